package mailorder_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/plba/plba/apps/mailorder"
	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/lifecycle"
)

// TestStoreNeverFailsAfterStart: the component "mailorder/store" never
// moves to failed after its start (a store that stops answering shows in
// the gating check "mailorder/store", a store that does not open fails
// the host's start), so it is registered lifecycle.NeverFails: the host
// refuses a lifecycle.policies entry for it, which would have no effect,
// and its status claims no policy.
func TestStoreNeverFailsAfterStart(t *testing.T) {
	t.Parallel()
	cfg := load(t, "host:\n  apps: [mailorder]\n",
		"mailorder.mailbox.host=127.0.0.1", "mailorder.mailbox.port=1", "mailorder.mailbox.tls=none",
		"mailorder.mailbox.username=u", "mailorder.mailbox.password=p",
		"mailorder.store.sqlite.path="+filepath.Join(t.TempDir(), "orders.db"))
	var reg *lifecycle.Registry
	app := fx.New(platform.Module(cfg, platform.Info{}), mailorder.Module, fx.Populate(&reg), fx.NopLogger)
	require.NoError(t, app.Err())
	require.True(t, reg.NeverFails("mailorder/store"))
	c, ok := reg.Get("mailorder/store")
	require.True(t, ok)
	require.Empty(t, c.Status().Policy)
}
