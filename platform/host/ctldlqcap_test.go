package host

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
)

// TestCtlDlqActionRefusesTooManyIDs: a re-drive or purge of more ids
// than the API takes in one call is a usage error (exit 2) that names the
// cap and sends nothing, as the server would refuse it; the cap itself
// is sent.
func TestCtlDlqActionRefusesTooManyIDs(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		_, _ = w.Write([]byte(`{"dry_run":true,"matched":0,"done":0,"failed":[],"gone":0}`))
	}))
	t.Cleanup(srv.Close)
	t.Setenv(CtlTokenEnv, "t")
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprint("id", i)
		}
		return out
	}
	for _, action := range []string{"redrive", "purge"} {
		var out, errb bytes.Buffer
		args := append([]string{"ctl", "--url", srv.URL, "dlq", action, "default", "--dry-run"}, ids(control.MaxDeadActionIDs+1)...)
		code := execute(args, &out, &errb)
		require.Equal(t, ExitUsage, code, "%s: %s", action, errb.String())
		require.Contains(t, errb.String(), fmt.Sprint(control.MaxDeadActionIDs))
		require.Zero(t, calls.Load(), "a usage error sends nothing")
	}
	var out, errb bytes.Buffer
	args := append([]string{"ctl", "--url", srv.URL, "dlq", "purge", "default", "--dry-run"}, ids(control.MaxDeadActionIDs)...)
	require.Equal(t, ExitOK, execute(args, &out, &errb), strings.TrimSpace(errb.String()))
	require.EqualValues(t, 1, calls.Load())
}
