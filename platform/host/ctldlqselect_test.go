package host

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCtlDlqActionRefusesABadSelection: a re-drive or purge that selects
// nothing (no id, no filter, no --all) or selects both by ids and by a
// filter or --all is a usage error (exit 2) that sends nothing, naming
// what to give; they went to the server, which refused them, and ctl
// exited 1 as for a failed call.
func TestCtlDlqActionRefusesABadSelection(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		_, _ = w.Write([]byte(`{"dry_run":true,"matched":0,"done":0,"failed":[],"gone":0}`))
	}))
	t.Cleanup(srv.Close)
	t.Setenv(CtlTokenEnv, "t")
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := execute(append([]string{"ctl", "--url", srv.URL, "dlq"}, args...), &out, &errb)
		return code, errb.String()
	}
	for _, args := range [][]string{
		{"redrive", "default"}, {"purge", "default", "--dry-run"},
		{"redrive", "default", "id1", "--kind", "k"}, {"purge", "default", "id1", "--all"},
		{"redrive", "default", "id1", "--since", "2026-01-02T15:04:05Z"},
	} {
		code, stderr := run(args...)
		require.Equal(t, ExitUsage, code, "%v: %s", args, stderr)
	}
	require.Zero(t, calls.Load(), "a usage error sends nothing")
	for _, args := range [][]string{
		{"redrive", "default", "id1", "id2"}, {"purge", "default", "--all", "--dry-run"},
		{"redrive", "default", "--kind", "k", "--dry-run"}, {"purge", "default", "--until", "2026-01-02T15:04:05Z", "--dry-run"},
	} {
		code, stderr := run(args...)
		require.Equal(t, ExitOK, code, "%v: %s", args, stderr)
	}
	require.EqualValues(t, 4, calls.Load())
}
