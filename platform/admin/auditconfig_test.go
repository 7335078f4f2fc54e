package admin_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
)

// The audit stream follows the host's stream prefix unless it is set; the
// section's defaults leave it unset, so that it can.
func TestAuditStreamFor(t *testing.T) {
	t.Parallel()
	require.Empty(t, admin.DefaultConfig().Audit.Stream, "the default follows the stream prefix")
	for _, tc := range []struct{ stream, prefix, want string }{
		{"", "PLBA", admin.DefaultAuditStream}, // the default prefix keeps the records where they were
		{"", "SHOP-EU", "SHOP-EU_AUDIT"},
		{"MY_AUDIT", "SHOP-EU", "MY_AUDIT"}, // set: used whatever the prefix
	} {
		got, err := admin.AuditConfig{Stream: tc.stream}.StreamFor(tc.prefix)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "stream %q, prefix %q", tc.stream, tc.prefix)
	}
	require.Equal(t, "PLBA_AUDIT", admin.DefaultAuditStream)
	_, err := admin.AuditConfig{}.StreamFor(strings.Repeat("P", 250))
	require.ErrorContains(t, err, "longer than the 255 bytes")

	cfg := admin.DefaultConfig()
	cfg.Audit.Stream = strings.Repeat("S", 256)
	require.ErrorContains(t, cfg.Validate(), "audit.stream")
	cfg.Audit.Stream = "A.B"
	require.ErrorContains(t, cfg.Validate(), "audit.stream")
	cfg.Audit.Stream = ""
	require.NoError(t, cfg.Validate())
}
