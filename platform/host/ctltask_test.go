package host

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCtlTaskSaysWhatIsMissingOrTooMuch: `ctl task QUEUE` with neither an
// id nor --key says to give one, and with both says not both; either way
// it exits 2 and calls nothing.
func TestCtlTaskSaysWhatIsMissingOrTooMuch(t *testing.T) {
	called := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called = true
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := execute(append([]string{"ctl", "--url", srv.URL, "task"}, args...), &out, &errb)
		return code, errb.String()
	}
	code, stderr := run("billing")
	require.Equal(t, ExitUsage, code, stderr)
	require.Contains(t, stderr, "give a task ID or --key KEY")
	require.NotContains(t, stderr, "not both")

	code, stderr = run("billing", "id1", "--key", "k1")
	require.Equal(t, ExitUsage, code, stderr)
	require.Contains(t, stderr, "not both")
	require.False(t, called, "a usage error calls nothing")
}
