package host

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCtlActionNeverSentIsNotSaidMaybeDone: a call refused before its
// request was written (the server's certificate not trusted: the TLS
// handshake failed) did nothing on the server; ctl does not say it may
// have, as it does for a call that reached the server unanswered.
func TestCtlActionNeverSentIsNotSaidMaybeDone(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		_, _ = w.Write([]byte(`{}`))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake ctl breaks off
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Setenv(CtlTokenEnv, "operator-token")
	var out, errb bytes.Buffer
	code := execute([]string{"ctl", "--url", srv.URL, "pool", "pause", "default"}, &out, &errb)
	require.Equal(t, ExitFailure, code)
	require.Contains(t, errb.String(), "certificate", "the reason")
	require.NotContains(t, errb.String(), "may have done it", "never sent: %s", errb.String())
	require.Zero(t, got.Load(), "the server got nothing")
}
