package host

import (
	"bytes"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCtlTrustsTheCertificatesOfCAFile: a host whose admin.tls
// certificate a private CA signed is reached with --ca-file naming that
// CA; without it the call is refused (the certificate is not trusted),
// and a --ca-file that holds no certificate, or with an http:// URL, is a
// usage error. ctl had no way to trust such a host but for the system's
// store.
func TestCtlTrustsTheCertificatesOfCAFile(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		_, _ = w.Write([]byte(`{"level":"info"}`))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake refused without the CA
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Setenv(CtlTokenEnv, "operator-token")
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := execute(append([]string{"ctl"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}

	code, _, stderr := run("--url", srv.URL, "loglevel")
	require.Equal(t, ExitFailure, code)
	require.Contains(t, stderr, "certificate")
	require.Zero(t, got.Load())

	code, stdout, stderr := run("--url", srv.URL, "--ca-file", ca, "loglevel")
	require.Zero(t, code, stderr)
	require.Contains(t, stdout, "info")
	require.Equal(t, int64(1), got.Load())

	empty := filepath.Join(dir, "empty.pem")
	require.NoError(t, os.WriteFile(empty, []byte("not a certificate\n"), 0o600))
	code, _, stderr = run("--url", srv.URL, "--ca-file", empty, "loglevel")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, "--ca-file "+empty+": no PEM certificate in it")
	code, _, stderr = run("--url", "http://127.0.0.1:1", "--ca-file", ca, "loglevel")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, "--ca-file is for an https:// --url")
	require.Equal(t, int64(1), got.Load())
}
