package jetstream

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestAReleasedCopyDoesNotDeleteItself: a released copy's delivery
// deletes the message it copies, named by the sequence in its
// Nats-Msg-Id. That message is older than the copy: a copy stored at the
// very sequence its Nats-Msg-Id names (a work stream set up anew while
// the delivery it copies was held, whose numbering started again and
// reached that sequence) copies no message of this stream. It is handed
// out and stays queued, delivered again after a retry. It deleted
// itself before it was handed out: a retry, a lease that ran out or a
// process that died lost the task.
func TestAReleasedCopyDoesNotDeleteItself(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{Prefetch: 1, MaxPrefetch: 1, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "release-copy-self"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "t", Kind: "k", Queue: qn}))
	d := leaseOne(t, b, qn)
	r, err := b.receiptOf(d)
	require.NoError(t, err)
	// The copy names the sequence it is stored at (the next one).
	own := r.seq + 1
	ack, err := b.js.PublishMsg(ctx, encodeTask(d.Task, msgSpec{subject: r.q.subject,
		msgID: msgIDOf(d.Task.Key, !r.keyed) + releaseMark + strconv.FormatUint(own, 10), keyed: r.keyed, attempts: r.attempt - 1}))
	require.NoError(t, err)
	require.Equal(t, own, ack.Sequence)
	// d stays leased: the next delivery is the copy's.

	c := leaseOne(t, b, qn)
	require.Equal(t, "t", c.Task.ID)
	_, err = r.q.workStream().GetMsg(ctx, own)
	require.NoError(t, err, "the copy handed out is still queued")
	require.NoError(t, b.Retry(ctx, c, time.Now()))
	again := leaseOne(t, b, qn)
	require.Equal(t, "t", again.Task.ID, "the task retried is delivered again")
	require.NoError(t, b.Ack(ctx, again))
	_ = b.Ack(ctx, d) // done with (its lease may have ended on a slow machine)
}
