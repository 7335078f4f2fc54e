package main

import (
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// auditStreamShown is the admin.audit.stream line `config show` prints.
var auditStreamShown = regexp.MustCompile(`(?m)^admin:\n(?:    .*\n)*?    audit:\n(?:        .*\n)*?        stream: (.*)\n`)

// `config show` prints the audit stream the host uses: the stream prefix
// with _AUDIT when admin.audit.stream is unset (it printed "", while the
// audit went to PLBA_AUDIT or <prefix>_AUDIT), the stream set otherwise.
func TestConfigShowsTheAuditStreamUsed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sets []string
		want string
	}{
		{nil, "PLBA_AUDIT"},
		{[]string{"queue.jetstream.stream_prefix=SHOP-EU"}, "SHOP-EU_AUDIT"},
		{[]string{"queue.jetstream.stream_prefix=SHOP-EU", "admin.audit.stream=SHOP_AUDIT_LOG"}, "SHOP_AUDIT_LOG"},
	} {
		args := []string{"config", "show", "--set", "queue.backend=jetstream"}
		for _, s := range tc.sets {
			args = append(args, "--set", s)
		}
		r := runHostCmd(t, nil, args...)
		require.Equal(t, 0, r.code, "%v: %s", tc.sets, r.stderr)
		m := auditStreamShown.FindStringSubmatch(r.stdout)
		require.NotNil(t, m, "%v: no admin.audit.stream in\n%s", tc.sets, r.stdout)
		require.Equal(t, tc.want, m[1], "%v", tc.sets)
	}
}

// An admin.audit.stream that is one of the host's own streams (here its
// dead-letter stream, and a work stream) is a configuration problem:
// validate, show and run exit 2 naming the file, the key and the problem,
// and run starts nothing. A stream of its own is fine.
func TestAuditStreamOnAHostStreamExits2(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ stream, what string }{
		{"PLBA_DEAD", "is the host's dead-letter stream"},
		{"PLBA_Q_mailorder", "is a work stream of the host's queues"},
		{"KV_plba_leases", "is the stream of a key-value bucket"},
	} {
		path := writeFile(t, "audit.yaml", "queue:\n  backend: jetstream\nadmin:\n  audit:\n    stream: "+tc.stream+"\n")
		for _, cmd := range [][]string{{"config", "validate"}, {"config", "show"}, {"run"}} {
			dir := t.TempDir()
			r := runHostCmdIn(t, dir, nil, append(cmd, "--config", path)...)
			require.Equal(t, 2, r.code, "%s %v: %s", tc.stream, cmd, r.stderr)
			require.Contains(t, r.stderr, path+": admin.audit.stream: the audit stream \""+tc.stream+"\" "+tc.what, "%v", cmd)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			require.Empty(t, entries, "%v: nothing opened (no JetStream store)", cmd)
		}
	}
	path := writeFile(t, "audit.yaml", "queue:\n  backend: jetstream\nadmin:\n  audit:\n    stream: PLBA_ADMIN_AUDIT\n")
	r := runHostCmd(t, nil, "config", "validate", "--config", path)
	require.Equal(t, 0, r.code, r.stderr)
}
