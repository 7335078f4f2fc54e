package jetstream

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// TestPurgeSetsUpAgainTheStreamOfClaims: the stream of finished keys,
// which holds the dead letters' claims, was deleted on the server (an
// operator's mistake, a server that lost it). A Purge sets it up again,
// as an Enqueue does its work stream, and purges the dead letter. Its
// claim found no stream and the Purge failed, and every one after it,
// until something else set the stream up again.
func TestPurgeSetsUpAgainTheStreamOfClaims(t *testing.T) {
	t.Parallel()
	onEachTestServer(t, Config{AckWait: 5 * time.Second}, func(t *testing.T, cfg Config) {
		ctx := t.Context()
		b := openTestBackend(t, cfg)
		const qn = "purge-claims-gone"
		require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t1", Kind: "k", Queue: qn}))
		d := leaseOne(t, b, qn)
		require.NoError(t, b.DeadLetter(ctx, d, "boom"))

		js, err := jetstream.New(b.nc)
		require.NoError(t, err)
		require.NoError(t, js.DeleteStream(ctx, b.names.doneStream()))

		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		purged, err := b.Purge(pctx, qn, "t1")
		require.NoError(t, err)
		require.Equal(t, 1, purged)
		dead, err := b.ListDead(ctx, qn, 0)
		require.NoError(t, err)
		require.Empty(t, dead)
	})
}
