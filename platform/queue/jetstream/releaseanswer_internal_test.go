package jetstream

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// isReleasedCopy matches the copy a Release publishes.
func isReleasedCopy(m *nats.Msg) bool { return strings.Contains(m.Header.Get(hdrMsgID), "-release-") }

// TestReleasedCopyWhoseAnswerIsLostIsSentAgain: the copy a Release
// publishes is stored but its answer is lost, or the server answers that
// its Nats-Msg-Id is being stored (error 10158). The copy is sent again
// after Config.PublishTimeout (or a pause) with its Nats-Msg-Id, as a
// dead-letter copy is: one copy is queued, with the attempts of the
// original, and Release returns soon. It used to wait for the lost answer
// until the lease ended (20 s here) and then, as for a refusal at once,
// fall back to a negative ack: the delivery counted an attempt, beside a
// copy stored already when its answer was lost (the task queued twice).
func TestReleasedCopyWhoseAnswerIsLostIsSentAgain(t *testing.T) {
	t.Parallel()
	const (
		publishTimeout = time.Second
		ackWait        = time.Second
	)
	for name, first := range lostAnswers() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b := openFirstFault(t, Config{Mode: ModeEmbedded, AckWait: ackWait, PublishTimeout: publishTimeout,
				Embedded: embedded.Config{StoreDir: t.TempDir()}}, isReleasedCopy, first)
			const qname = "releaseanswer"
			require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t", Key: "k-1", Kind: "k", Queue: qname}))
			d := leaseOne(t, b, qname)
			require.NoError(t, b.Extend(ctx, d, 20*time.Second))
			start := time.Now()
			require.NoError(t, b.Release(ctx, d))
			require.Less(t, time.Since(start), 3*publishTimeout, "sent again after the publish timeout, not waited for until the lease ends")
			again := leaseOne(t, b, qname)
			require.Equal(t, "t", again.Task.ID)
			require.Equal(t, 1, again.Task.Attempt, "the released copy, its delivery not counted (no negative ack)")
			require.NoError(t, b.Ack(ctx, again))
			lctx, cancel := context.WithTimeout(ctx, 3*ackWait)
			defer cancel()
			ds, err := b.Lease(lctx, qname, 1, 30*time.Second)
			require.ErrorIs(t, err, context.DeadlineExceeded, "one copy queued, nothing else: %v", ds)
		})
	}
}
