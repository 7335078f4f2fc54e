package host

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
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

// TestCtlTaskShowsNoAttemptsForAKeysMarker: a finished task found by its
// key's marker only has no attempt count (the backend keeps the key, not
// the task): the table shows "-", not 0 attempts for a task that ran.
func TestCtlTaskShowsNoAttemptsForAKeysMarker(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"found":[` +
			`{"state":"ready","task":{"id":"t1","kind":"k","key":"a"}},` +
			`{"state":"succeeded","task":{"key":"a"}}],"searched":["ready tasks","finished keys"]}`))
	}))
	t.Cleanup(srv.Close)
	var out, errb bytes.Buffer
	code := execute([]string{"ctl", "--url", srv.URL, "task", "billing", "--key", "a"}, &out, &errb)
	require.Equal(t, ExitOK, code, errb.String())
	lines := strings.Split(out.String(), "\n")
	require.GreaterOrEqual(t, len(lines), 3, out.String())
	require.Equal(t, []string{"ready", "t1", "k", "a", "0", "-", "-"}, strings.Fields(lines[1]))
	require.Equal(t, []string{"succeeded", "-", "-", "a", "-", "-", "-"}, strings.Fields(lines[2]))
}
