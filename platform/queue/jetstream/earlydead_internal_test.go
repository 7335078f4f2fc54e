package jetstream

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestEarlyCountDroppedWhenSettled: the count of a message's early
// deliveries (earlyOf) lives while the message does, and is dropped when
// it is acknowledged, so that the queue does not keep one per delayed
// task for good.
func TestEarlyCountDroppedWhenSettled(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{Mode: ModeEmbedded, Embedded: embedded.Config{StoreDir: t.TempDir()},
		AckWait: 5 * time.Second, MaxMsgs: 100})
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "later", Kind: "k", Queue: "early", NotBefore: time.Now().Add(2 * time.Second)}))
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ds, err := b.Lease(lctx, "early", 1, time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	r := ds[0].Receipt.(*receipt)
	require.Equal(t, 1, r.early, "delivered early once")
	require.Equal(t, 1, r.q.earlyOf(r.seq), "kept while the message lives")
	require.NoError(t, b.Ack(ctx, ds[0]))
	require.Equal(t, 0, r.q.earlyOf(r.seq))
	require.False(t, r.q.hasEarly.Load(), "no early count left")
}
