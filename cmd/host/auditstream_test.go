package main

import (
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
