package jetstream

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestTaskDeliveredAgainAfterItFinishedIsNotHandedOut: a settlement cut
// short after its finished-key marker (the process killed before the ack
// of a success, or before the term of a dead letter) leaves the message
// to be delivered again after its AckWait. That delivery is not handed
// out: the success is acked, the dead letter (stored before its marker)
// terminated, and the queue is empty. It used to be handed out, so a task
// already dead-lettered could run again and succeed: two outcomes.
func TestTaskDeliveredAgainAfterItFinishedIsNotHandedOut(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	q, err := b.queue("again")
	require.NoError(t, err)
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "ok", Kind: "k", Queue: "again"}, &task.Task{ID: "dead", Kind: "k", Queue: "again"}))
	lease := func(wait time.Duration) []*queue.Delivery { return leaseWithin(t, b, "again", wait) }
	var ds []*queue.Delivery
	for len(ds) < 2 {
		ds = append(ds, lease(10*time.Second)...)
	}
	for _, d := range ds {
		// What the settlement did before it was cut short.
		if d.Task.ID == "dead" {
			_, err := b.publishDead(ctx, q, d.Task, true, d.Receipt.(*receipt).seq, d.Task.Attempt, "bad input")
			require.NoError(t, err)
			require.NoError(t, b.markDone(ctx, q, d.Task.Key, d.Receipt.(*receipt).keyed, task.DeadLettered, "bad input"))
			continue
		}
		require.NoError(t, b.markDone(ctx, q, d.Task.Key, d.Receipt.(*receipt).keyed, task.Succeeded, ""))
	}
	// Past the AckWait the server delivers both again: neither is handed out.
	got := lease(3 * time.Second)
	require.Empty(t, got, "a finished task handed out again")
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, "again")
		return err == nil && st.Ready+st.InFlight+st.Delayed == 0 && st.Dead == 1
	}, 10*time.Second, 20*time.Millisecond, "the queue is empty, one dead letter")
	dead, err := b.ListDead(ctx, "again", 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "dead", dead[0].Task.ID)
}

// leaseWithin leases up to two deliveries of q with a 1 s lease,
// waiting at most wait: none when the wait ends first.
func leaseWithin(t *testing.T, b *Backend, q string, wait time.Duration) []*queue.Delivery {
	t.Helper()
	lctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	ds, err := b.Lease(lctx, q, 2, time.Second)
	if lctx.Err() == nil {
		require.NoError(t, err)
	}
	return ds
}

// TestRedriveCutShortLeavesNoDeadLetterBehind: a Redrive that stored a
// dead letter's copy and died before deleting the dead letter left a task
// both queued and dead. The copy's first delivery deletes that dead
// letter, and only that one: a task whose key merely ends like a
// re-driven copy's id names another dead letter, which stays.
func TestRedriveCutShortLeavesNoDeadLetterBehind(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	q, err := b.queue("rd")
	require.NoError(t, err)
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "a", Kind: "k", Queue: "rd"}, &task.Task{ID: "b", Kind: "k", Queue: "rd"}))
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var ds []*queue.Delivery
	for len(ds) < 2 {
		got, err := b.Lease(lctx, "rd", 2, 5*time.Second)
		require.NoError(t, err)
		ds = append(ds, got...)
	}
	for _, d := range ds {
		require.NoError(t, b.DeadLetter(ctx, d, "bad input"))
	}
	seqs := map[string]uint64{}
	require.NoError(t, b.scanDead(ctx, q.queueNames, func(m deadMsg) bool { seqs[m.dl.Task.ID] = m.seq; return true }))
	require.Len(t, seqs, 2)

	// What Redrive stored for "a" before it was cut short, and a task
	// whose key names the sequence of "b"'s dead letter.
	copyOf := &task.Task{ID: "a", Key: "a", Kind: "k", Queue: "rd", EnqueuedAt: time.Now()}
	msgID := msgIDOf("a", false) + redriveMark + strconv.FormatUint(seqs["a"], 10)
	_, err = b.js.PublishMsg(ctx, encodeTask(copyOf, msgSpec{subject: q.subject, msgID: msgID, keyed: true}))
	require.NoError(t, err)
	other := "x" + redriveMark + strconv.FormatUint(seqs["b"], 10)
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: other, Kind: "k", Queue: "rd"}))

	var ids []string
	for len(ids) < 2 {
		got, err := b.Lease(lctx, "rd", 2, 5*time.Second)
		require.NoError(t, err)
		for _, d := range got {
			ids = append(ids, d.Task.ID)
			require.NoError(t, b.Ack(ctx, d))
		}
	}
	require.ElementsMatch(t, []string{"a", other}, ids)
	dead, err := b.ListDead(ctx, "rd", 0)
	require.NoError(t, err)
	require.Len(t, dead, 1, "the re-driven task's dead letter is gone, the other stays")
	require.Equal(t, "b", dead[0].Task.ID)
}

// A task with a generated key that succeeded on its last attempt
// (queue.Delivery.Last) and whose ack was lost (a process or an embedded
// server killed after the marker) is not handed out again: it would come
// back past its last attempt, and the pool would dead-letter a task that
// succeeded, its source told a second, different outcome. Ack records the
// marker for it on the last attempt only (before: never), and its
// redelivery finds it (before: only keyed tasks looked).
func TestKeylessTaskAckedOnItsLastAttemptIsNotHandedOutAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	q, err := b.queue("last")
	require.NoError(t, err)
	lease := func(wait time.Duration) []*queue.Delivery { return leaseWithin(t, b, "last", wait) }
	leaseOne := func() *queue.Delivery {
		var ds []*queue.Delivery
		for len(ds) == 0 {
			ds = lease(10 * time.Second)
		}
		require.Len(t, ds, 1)
		require.False(t, ds[0].Receipt.(*receipt).keyed, "the key is generated")
		return ds[0]
	}
	enqueue := func() {
		tk := &task.Task{Kind: "k", Queue: "last"}
		tk.Prepare(time.Now()) // as the producer does: the key generated
		require.NoError(t, b.Enqueue(ctx, tk))
	}
	marker := func(key string) (uint64, bool) {
		seq, ok, err := b.doneMarker(ctx, q, key, false)
		require.NoError(t, err)
		return seq, ok
	}

	// Not the last attempt: the ack alone, no marker.
	enqueue()
	d := leaseOne()
	require.NoError(t, b.Ack(ctx, d))
	seq, _ := marker(d.Task.Key)
	require.Zero(t, seq, "a marker for a generated key before the last attempt")

	// The last attempt: the marker, then the ack.
	enqueue()
	d = leaseOne()
	d.Last = true
	require.NoError(t, b.Ack(ctx, d))
	require.Eventually(t, func() bool { seq, ok := marker(d.Task.Key); return seq > 0 && ok },
		5*time.Second, 10*time.Millisecond, "no marker for a success on the last attempt")

	// The last attempt's settlement cut short after its marker: past the
	// AckWait the server delivers the task again, and it is not handed out.
	enqueue()
	d = leaseOne()
	require.NoError(t, b.markDone(ctx, q, d.Task.Key, d.Receipt.(*receipt).keyed, task.Succeeded, ""))
	require.Empty(t, lease(3*time.Second), "a task that succeeded on its last attempt handed out again")
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, "last")
		return err == nil && st.Ready+st.InFlight+st.Delayed+st.Dead == 0
	}, 10*time.Second, 20*time.Millisecond, "the queue is empty, no dead letter")
}

// A task with a generated key whose source waits for its outcome
// (task.HeaderCompletion) is recorded as finished by the Ack of any
// attempt, and Ack returns only once the record is stored: the source is
// told "succeeded" when Ack returns, and were the ack lost then (a
// disconnect, a process or embedded server killed), the task would come
// back and run again, and its source would hear a second outcome. Before,
// only its last attempt was recorded, so the redelivery was handed out;
// then the record was only sent before Ack returned, and a record lost
// with its server let the task run again after its source was told
// (TestClusterNodeLossTellsEachTaskOnce: an order run again at attempt 2).
func TestKeylessTaskItsSourceWaitsForIsNotHandedOutAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	q, err := b.queue("told")
	require.NoError(t, err)
	leaseOne := func() *queue.Delivery {
		var ds []*queue.Delivery
		for len(ds) == 0 {
			ds = leaseWithin(t, b, "told", 10*time.Second)
		}
		require.Len(t, ds, 1)
		require.False(t, ds[0].Receipt.(*receipt).keyed, "the key is generated")
		return ds[0]
	}
	enqueue := func() {
		tk := &task.Task{Kind: "k", Queue: "told"}
		tk.SetHeader(task.HeaderCompletion, "mailbox")
		tk.Prepare(time.Now())
		require.NoError(t, b.Enqueue(ctx, tk))
	}

	// Not the last attempt: the marker is stored when Ack returns.
	enqueue()
	d := leaseOne()
	require.False(t, d.Last)
	require.NoError(t, b.Ack(ctx, d))
	seq, ok, err := b.doneMarker(ctx, q, d.Task.Key, false)
	require.NoError(t, err)
	require.True(t, seq > 0 && ok, "no finished marker when Ack returned for a task its source waits for")

	// The settlement cut short after the marker, the ack lost: past the
	// AckWait the server delivers the task again, and it is not handed out.
	enqueue()
	d = leaseOne()
	require.NoError(t, b.markDone(ctx, q, d.Task.Key, d.Receipt.(*receipt).keyed, task.Succeeded, ""))
	require.Empty(t, leaseWithin(t, b, "told", 3*time.Second), "a task whose source heard its success handed out again")
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, "told")
		return err == nil && st.Ready+st.InFlight+st.Delayed+st.Dead == 0
	}, 10*time.Second, 20*time.Millisecond, "the queue is empty, no dead letter")
}

// lookupFails is a stream of finished keys whose marker lookups fail, as
// they do while the stream elects a leader after the loss of a server.
type lookupFails struct{ jetstream.Stream }

func (lookupFails) GetLastMsgForSubject(context.Context, string) (*jetstream.RawStreamMsg, error) {
	return nil, nats.ErrNoResponders
}

// TestFinishedTaskIsNotHandedOutWhileItsMarkerCannotBeRead: a task whose
// settlement was cut short after its finished-key marker is delivered
// again while the marker cannot be read (on a cluster, the stream of
// finished keys without a leader for a while after a server was lost).
// It is not handed out then, but left to the server, and dropped as
// finished once the marker can be read. It used to be handed out, so the
// task ran again (seen in TestClusterNodeLossTellsEachTaskOnce as a
// scheduled due time handled twice) and could end in a second, different
// outcome.
func TestFinishedTaskIsNotHandedOutWhileItsMarkerCannotBeRead(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	q, err := b.queue("again")
	require.NoError(t, err)
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "ok", Key: "order-1", Kind: "k", Queue: "again"}))
	ds := leaseWithin(t, b, "again", 10*time.Second)
	require.Len(t, ds, 1)
	// What the settlement did before it was cut short.
	require.NoError(t, b.markDone(ctx, q, "order-1", true, task.Succeeded, ""))

	done := b.done
	b.done = lookupFails{done}
	// Past the AckWait the server delivers it again, twice within 3 s:
	// it is not handed out while its marker cannot be read.
	require.Empty(t, leaseWithin(t, b, "again", 3*time.Second), "a finished task handed out again")
	b.done = done
	require.Empty(t, leaseWithin(t, b, "again", 3*time.Second), "a finished task handed out again")
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, "again")
		return err == nil && st.Ready+st.InFlight+st.Delayed == 0
	}, 10*time.Second, 20*time.Millisecond, "the finished task dropped once its marker could be read")
}

// TestRedriveCutShortWithItsCopyFirstDeliveredToTheDeadLeavesNoDeadLetter:
// a host killed midway through a Redrive may also have been delivered the
// copy it had just stored, in its prefetch buffer, without handing it
// out. The copy's next delivery is then its second, and it must still
// delete the dead letter it was re-driven from; only a first delivery
// used to, so the task ran, succeeded, and stayed listed as a dead letter
// (TestCrashDuringRedriveLeavesEachDeadLetterInOnePlace, under -race).
func TestRedriveCutShortWithItsCopyFirstDeliveredToTheDeadLeavesNoDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	q, err := b.queue("rd2")
	require.NoError(t, err)
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "a", Kind: "k", Queue: "rd2"}))
	var ds []*queue.Delivery
	for len(ds) == 0 {
		ds = leaseWithin(t, b, "rd2", 10*time.Second)
	}
	require.NoError(t, b.DeadLetter(ctx, ds[0], "bad input"))
	var seq uint64
	require.NoError(t, b.scanDead(ctx, q.queueNames, func(m deadMsg) bool { seq = m.seq; return true }))

	// What Redrive stored before it was cut short, and its first delivery,
	// taken by the process that died before it handed the copy out.
	copyOf := &task.Task{ID: "a", Key: "a", Kind: "k", Queue: "rd2", EnqueuedAt: time.Now()}
	msgID := msgIDOf("a", false) + redriveMark + strconv.FormatUint(seq, 10)
	_, err = b.js.PublishMsg(ctx, encodeTask(copyOf, msgSpec{subject: q.subject, msgID: msgID, keyed: true}))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		q.pmu.Lock()
		defer q.pmu.Unlock()
		if len(q.buf) == 0 {
			return false
		}
		q.buf = q.buf[:0] // lost with the process
		return true
	}, 10*time.Second, time.Millisecond, "the copy's first delivery, prefetched")

	ds = nil
	for len(ds) == 0 {
		ds = leaseWithin(t, b, "rd2", 10*time.Second)
	}
	require.Equal(t, "a", ds[0].Task.ID)
	require.NoError(t, b.Ack(ctx, ds[0]))
	dead, err := b.ListDead(ctx, "rd2", 0)
	require.NoError(t, err)
	require.Empty(t, dead, "the re-driven task succeeded: its dead letter is gone")
}

// TestTaskFoundSucceededAgainTellsItsSource: a settlement that recorded a
// success and was then cut short (its ack lost or refused; ack_sync's
// record whose answer was lost) may not have told the task's source. Its
// redelivery, found succeeded and removed without being handed out, is
// reported to the WatchFinished function when the task has a source, so
// that the runtime tells it; a task without one is not reported. It used
// to be removed in silence: a source waiting for the outcome never heard
// it.
func TestTaskFoundSucceededAgainTellsItsSource(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	var (
		mu    sync.Mutex
		found []string
	)
	b.WatchFinished(func(tk *task.Task) {
		mu.Lock()
		found = append(found, tk.ID+" from "+tk.Header(task.HeaderCompletion))
		mu.Unlock()
	})
	withSource := &task.Task{ID: "told", Kind: "k", Queue: "fin"}
	withSource.SetHeader(task.HeaderCompletion, "mailbox")
	require.NoError(t, b.Enqueue(ctx, withSource, &task.Task{ID: "silent", Kind: "k", Queue: "fin"}))
	q, err := b.queue("fin")
	require.NoError(t, err)
	var ds []*queue.Delivery
	for len(ds) < 2 {
		ds = append(ds, leaseWithin(t, b, "fin", 10*time.Second)...)
	}
	for _, d := range ds {
		// The success recorded, its ack lost.
		require.NoError(t, b.markDone(ctx, q, d.Task.Key, d.Receipt.(*receipt).keyed, task.Succeeded, ""))
	}
	require.Empty(t, leaseWithin(t, b, "fin", 3*time.Second), "a finished task handed out again")
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, "fin")
		return err == nil && st.Ready+st.InFlight+st.Delayed == 0
	}, 10*time.Second, 20*time.Millisecond, "both removed")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"told from mailbox"}, found)
}

// TestRedrivenCopyIsNotHandedOutWhileItsDeadLetterStays: a re-driven
// copy whose delivery cannot delete the dead letter it came from (a
// Redrive cut short left it; the delete fails now) is not handed out: run,
// it could succeed and stay listed as a dead letter too. The server
// delivers it again after AckWait, and that delivery deletes the dead
// letter and is handed out. The copy used to run whatever the delete did.
func TestRedrivenCopyIsNotHandedOutWhileItsDeadLetterStays(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	q, err := b.queue("rd3")
	require.NoError(t, err)
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "a", Kind: "k", Queue: "rd3"}))
	var ds []*queue.Delivery
	for len(ds) == 0 {
		ds = leaseWithin(t, b, "rd3", 10*time.Second)
	}
	require.NoError(t, b.DeadLetter(ctx, ds[0], "bad input"))
	var seq uint64
	require.NoError(t, b.scanDead(ctx, q.queueNames, func(m deadMsg) bool { seq = m.seq; return true }))

	copyOf := &task.Task{ID: "a", Key: "a", Kind: "k", Queue: "rd3", EnqueuedAt: time.Now()}
	msgID := msgIDOf("a", false) + redriveMark + strconv.FormatUint(seq, 10)
	_, err = b.js.PublishMsg(ctx, encodeTask(copyOf, msgSpec{subject: q.subject, msgID: msgID, keyed: true}))
	require.NoError(t, err)
	var ins []inbound
	require.Eventually(t, func() bool { ins = q.take(ins, 1); return len(ins) == 1 }, 10*time.Second, time.Millisecond)
	failing, cancel := context.WithCancel(ctx)
	cancel() // the delete cannot be made
	require.Nil(t, b.deliver(failing, q, ins[0], time.Second), "handed out beside its dead letter")
	dead, err := b.ListDead(ctx, "rd3", 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)

	ds = nil
	for len(ds) == 0 {
		ds = leaseWithin(t, b, "rd3", 10*time.Second)
	}
	require.Equal(t, "a", ds[0].Task.ID)
	dead, err = b.ListDead(ctx, "rd3", 0)
	require.NoError(t, err)
	require.Empty(t, dead, "deleted by the delivery that was handed out")
	require.NoError(t, b.Ack(ctx, ds[0]))
}
