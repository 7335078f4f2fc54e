package host

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCtlDlqActionStoppedMidwayShowsWhatIsKnown: a re-drive the API
// stopped midway (the backend failed and what it did could not be
// checked) answers an error status with its counts: done, unknown, not
// tried. Ctl shows them, in its table and, with -o json, as the API's
// answer for a script, and exits 1; it printed the error line only, and
// nothing on stdout for a script.
func TestCtlDlqActionStoppedMidwayShowsWhatIsKnown(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"dry_run":false,"matched":700,"done":500,"failed":[],"gone":0,"unknown":150,"not_tried":50,` +
			`"error":"dlq.redrive stopped after 500 of 700 done (0 gone, 0 failed, 150 unknown, 50 not tried): backend: connection lost"}`))
	}))
	t.Cleanup(srv.Close)
	t.Setenv(CtlTokenEnv, "operator-token")
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := execute(append([]string{"ctl", "--url", srv.URL}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, stdout, stderr := run("-o", "json", "dlq", "redrive", "jobs", "--all")
	require.Equal(t, ExitFailure, code, stderr)
	require.Contains(t, stderr, "connection lost")
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(stdout), &res), "the API's answer on stdout: %q", stdout)
	require.EqualValues(t, 150, res["unknown"])
	require.EqualValues(t, 500, res["done"])

	code, stdout, stderr = run("dlq", "redrive", "jobs", "--all")
	require.Equal(t, ExitFailure, code, stderr)
	require.Contains(t, stdout, "re-driven 500 of 700")
	require.Contains(t, stdout, "150 unknown")
	require.Contains(t, stdout, "50 not tried")
}
