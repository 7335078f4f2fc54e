package plbatest_test

import (
	"net"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/goleak"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/plbatest"
)

// A kit leaves nothing running once its test ended: no goroutine, and
// the admin server's port is closed. (Not parallel: it counts the
// process's goroutines.)
func TestKitLeavesNothingRunning(t *testing.T) {
	opts := goleak.IgnoreCurrent()
	var addr string
	t.Run("kit", func(t *testing.T) {
		var fail atomic.Int32
		var srv *admin.Server
		src := plbatest.NewSource("feed")
		k := plbatest.Start(t, fx.Options(shop(&fail), src.Module()), plbatest.With(fx.Populate(&srv)))
		k.Enqueue(mustNew(t, placeOrder, orderArgs{ID: "o1", Cents: 1}))
		k.RunUntilIdle()
		require.Len(t, k.Succeeded(sendReceipt.Name()), 1)
		addr = srv.Addr()
	})
	require.NotEmpty(t, addr)
	require.NoError(t, goleak.Find(opts))
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
	}
	require.Error(t, err, "the admin server still listens on %s", addr)
}
