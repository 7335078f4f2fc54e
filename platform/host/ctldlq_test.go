package host

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// `dlq list` with a --limit out of 1 to 1000 (0 or negative included)
// or a --since/--until that is not an RFC 3339 time is a usage error
// (exit 2) that sends nothing: a --limit of 0 or less was dropped
// silently and the server's default page printed as if it were the page
// asked for.
func TestCtlDlqListRefusesABadLimitOrTime(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		_, _ = w.Write([]byte(`{"items":[]}`))
	}))
	t.Cleanup(srv.Close)
	t.Setenv(CtlTokenEnv, "t")
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := execute(append([]string{"ctl", "--url", srv.URL, "dlq", "list", "default"}, args...), &out, &errb)
		return code, errb.String()
	}
	for _, args := range [][]string{
		{"--limit", "0"}, {"--limit", "-5"}, {"--limit", "1001"},
		{"--since", "yesterday"}, {"--until", "2026-13-01"},
	} {
		code, stderr := run(args...)
		require.Equal(t, ExitUsage, code, "%v: %s", args, stderr)
		require.Contains(t, stderr, args[0], "%v: the flag is named", args)
	}
	require.Zero(t, calls.Load(), "a usage error sends nothing")
	code, stderr := run("--limit", "1000", "--since", "2026-01-02T15:04:05Z")
	require.Equal(t, ExitOK, code, stderr)
	require.EqualValues(t, 1, calls.Load())
}

// A --since at or after --until (a range that holds nothing, the two
// swapped most likely) and a pool size above the pools' maximum are
// usage errors (exit 2) that send nothing, on list, re-drive and purge
// alike: they went to the server, which refused them, and ctl exited 1 as
// for a failed call.
func TestCtlRefusesAnEmptyRangeAndATooLargePool(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"refused by the server"}`))
	}))
	t.Cleanup(srv.Close)
	t.Setenv(CtlTokenEnv, "t")
	swapped := []string{"--since", "2026-01-02T15:04:05Z", "--until", "2026-01-01T00:00:00Z"}
	for _, args := range [][]string{
		append([]string{"dlq", "list", "default"}, swapped...),
		append([]string{"dlq", "redrive", "default"}, swapped...),
		append([]string{"dlq", "purge", "default", "--dry-run"}, swapped...),
		{"dlq", "list", "default", "--since", "2026-01-02T15:04:05Z", "--until", "2026-01-02T15:04:05Z"},
		{"pool", "resize", "default", "10001"},
	} {
		var out, errb bytes.Buffer
		code := execute(append([]string{"ctl", "--url", srv.URL}, args...), &out, &errb)
		require.Equal(t, ExitUsage, code, "%v: %s", args, errb.String())
	}
	require.Zero(t, calls.Load(), "a usage error sends nothing")
}
