package jetstream

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestAdvisoryNamingNoMessageIsDropped: a max-deliveries advisory that
// names no message (stream_seq 0: forged with nats pub, or damaged) is
// dropped like one that is not JSON, and the advisories after it are
// handled. It used to be given back and tried again every second for
// ever (the server answers its message lookup "bad request"), an error
// logged each time.
func TestAdvisoryNamingNoMessageIsDropped(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{MaxDeliver: 2, AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "advseq0"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t1", Kind: "k", Queue: qn}))
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	ds, err := b.Lease(lctx, qn, 1, 5*time.Second) // starts reading advisories
	cancel()
	require.NoError(t, err)
	require.NoError(t, b.Ack(ctx, ds[0]))
	q, err := b.queue(qn)
	require.NoError(t, err)

	for _, seq := range []uint64{0, 99} { // 99: a message that is not stored
		body, err := json.Marshal(maxDeliveriesAdvisory{Stream: q.stream, Consumer: b.cfg.Consumer, StreamSeq: seq, Deliveries: 2})
		require.NoError(t, err)
		_, err = b.js.Publish(ctx, b.names.advisorySubject(q.stream), body)
		require.NoError(t, err)
	}
	adv, err := b.js.Stream(ctx, b.names.advisoryStream())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := adv.Info(ctx)
		return err == nil && info.State.Msgs == 0
	}, 10*time.Second, 20*time.Millisecond, "both advisories are done with, none is tried again for ever")
	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Empty(t, dead, "an advisory that names no message makes no dead letter")
}
