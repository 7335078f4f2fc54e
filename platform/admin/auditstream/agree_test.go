package auditstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/auditstream"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/queue/jetstream"
)

// TestHostsMustAgreeOnTheAuditStream: the hosts of a cluster share the
// audit stream, and Start created or updated it: the last host to start
// applied its max_msgs and max_age under the others, silently. A host
// that does not own its server refuses, naming the key (a configuration
// problem: exit 2), and leaves the stream as it is; one that owns its
// server (the only host on it) applies its configuration.
func TestHostsMustAgreeOnTheAuditStream(t *testing.T) {
	t.Parallel()
	b := backend(t, t.TempDir(), false)
	t.Cleanup(func() { require.NoError(t, b.Close(context.Background())) })
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	base := admin.AuditConfig{Stream: "PLBA_AUDIT", MaxMsgs: 500, MaxAge: time.Hour}
	require.NoError(t, auditstream.New(b.JetStream, base, 1, nil).Start(ctx))
	limits := func() (int64, time.Duration) {
		st, err := b.JetStream().Stream(ctx, "PLBA_AUDIT")
		require.NoError(t, err)
		return st.CachedInfo().Config.MaxMsgs, st.CachedInfo().Config.MaxAge
	}

	for _, tc := range []struct {
		key  string
		set  func(*admin.AuditConfig)
		says []string
	}{
		{"admin.audit.max_msgs", func(c *admin.AuditConfig) { c.MaxMsgs = 100 }, []string{"100, but the audit stream \"PLBA_AUDIT\"", "has 500"}},
		{"admin.audit.max_age", func(c *admin.AuditConfig) { c.MaxAge = 2 * time.Hour }, []string{"2h0m0s, but", "has 1h0m0s"}},
	} {
		cfg := base
		tc.set(&cfg)
		err := auditstream.New(b.JetStream, cfg, 1, nil).OwnedWhen(func() bool { return false }).Start(ctx)
		require.ErrorIs(t, err, jetstream.ErrSettingsDiffer, tc.key)
		var p config.Problem
		require.ErrorAs(t, err, &p, "a configuration problem (exit 2): %v", err)
		require.Equal(t, tc.key, p.Key, "%v", err)
		for _, s := range tc.says {
			require.Contains(t, p.Msg, s)
		}
		msgs, age := limits()
		require.Equal(t, int64(500), msgs, "the first host's stream is left alone")
		require.Equal(t, time.Hour, age, "the first host's stream is left alone")
	}
	require.NoError(t, auditstream.New(b.JetStream, base, 1, nil).Start(ctx), "the same settings")

	owned := base
	owned.MaxMsgs, owned.MaxAge = 100, 2*time.Hour
	require.NoError(t, auditstream.New(b.JetStream, owned, 1, nil).OwnedWhen(func() bool { return true }).Start(ctx))
	msgs, age := limits()
	require.Equal(t, int64(100), msgs, "a host that owns its server applies its configuration")
	require.Equal(t, 2*time.Hour, age, "a host that owns its server applies its configuration")
}
