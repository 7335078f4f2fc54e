package host

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
)

// TestCtlDlqActionOnAnUnknownIDSaysSo: a re-drive or purge of an id
// that is not a dead letter of the queue (the API answers matched 0 and
// the id failed, "not a dead letter of queue Q") prints that nothing was
// done and why, and exits 1 as for any id left undone; with --all on a
// queue without dead letters it says there are none, and exits 0. It
// printed "re-driven 0 of 0" before the failed line.
func TestCtlDlqActionOnAnUnknownIDSaysSo(t *testing.T) {
	var answer control.DeadResult
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer)
	}))
	t.Cleanup(srv.Close)
	t.Setenv(CtlTokenEnv, "operator-token")
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := execute(append([]string{"ctl", "--url", srv.URL, "dlq"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	for _, action := range []string{"redrive", "purge"} {
		answer = control.DeadResult{Failed: []control.Failure{{ID: "nope", Error: "not a dead letter of queue jobs"}}}
		code, stdout, stderr := run(action, "jobs", "nope")
		require.Equal(t, ExitFailure, code, "%s: %s", action, stderr)
		require.NotContains(t, stdout, "0 of 0", action)
		require.Contains(t, stdout, "nothing "+pastTense(action), action)
		require.Regexp(t, `failed +nope +not a dead letter of queue jobs`, stdout, action)
		require.Contains(t, stderr, "1 not done", action)

		answer = control.DeadResult{Failed: []control.Failure{}}
		code, stdout, stderr = run(action, "jobs", "--all")
		require.Equal(t, ExitOK, code, "%s: %s", action, stderr)
		require.NotContains(t, stdout, "0 of 0", action)
		require.Contains(t, stdout, "nothing "+pastTense(action)+": no dead letter of queue jobs selected", action)
	}
}
