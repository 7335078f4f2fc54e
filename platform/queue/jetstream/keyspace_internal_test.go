package jetstream

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestAProducersKeyTakesNoReleasedCopy: a producer's key written as the
// Nats-Msg-Id of the copy a Release will publish (the task's key,
// "-release-", the sequence of the message it copies: whoever saw the
// task's id and guesses the sequence can write it) is stored as a task of
// its own, and the Release's copy is stored too, for a keyless task and
// for a keyed one: every task is worked once. The copy used to be
// refused as a duplicate of the producer's task, which Release took for
// its own copy stored already: it acked the original, and the released
// task was lost.
func TestAProducersKeyTakesNoReleasedCopy(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "keyspace-release"
	keyless := &task.Task{Kind: "k", Queue: qn, Payload: []byte("keyless")}
	keyed := &task.Task{Kind: "k", Queue: qn, Key: "order-1", Payload: []byte("keyed")}
	require.NoError(t, b.Enqueue(ctx, keyless, keyed))
	var ds []*queue.Delivery
	var crafted []*task.Task
	for range 2 {
		d := leaseOne(t, b, qn)
		r, err := b.receiptOf(d)
		require.NoError(t, err)
		c := &task.Task{Kind: "k", Queue: qn, Key: d.Task.Key + releaseMark + strconv.FormatUint(r.seq, 10),
			Payload: []byte("crafted-" + string(d.Task.Payload))}
		crafted = append(crafted, c)
		ds = append(ds, d)
	}
	require.NoError(t, b.Enqueue(ctx, crafted...))
	for _, c := range crafted {
		require.False(t, task.Dropped(c), "%s is stored", c.Payload)
	}
	for _, d := range ds {
		require.NoError(t, b.Release(ctx, d))
	}
	want := map[string]string{"keyless": keyless.ID, "keyed": keyed.ID, "crafted-keyless": crafted[0].ID, "crafted-keyed": crafted[1].ID}
	if string(ds[0].Task.Payload) == "keyed" {
		want["crafted-keyless"], want["crafted-keyed"] = crafted[1].ID, crafted[0].ID
	}
	for range len(want) {
		d := leaseOne(t, b, qn)
		id, ok := want[string(d.Task.Payload)]
		require.True(t, ok, "%s delivered once", d.Task.Payload)
		require.Equal(t, id, d.Task.ID)
		delete(want, string(d.Task.Payload))
		require.NoError(t, b.Ack(ctx, d))
	}
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	extra, err := b.Lease(lctx, qn, 1, time.Second)
	require.ErrorIs(t, err, context.DeadlineExceeded, "nothing more: %v", extra)
}

// TestDelayedTasksWithOneIDAreBothKept: two delayed tasks of one queue
// with one id (given by producers, with two keys; or given by one and
// generated for the other, a keyless task) are both stored and both
// become ready. The server keeps one message schedule per subject, which
// was the task's id: the second replaced the first, which was lost while
// Enqueue had reported it stored. The same task (its id and key)
// enqueued again still has one schedule.
func TestDelayedTasksWithOneIDAreBothKept(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	if !b.scheduling() {
		t.Skip("the server has no message schedules")
	}
	const qn = "keyspace-sched"
	at := time.Now().Add(time.Second)
	keyless := &task.Task{Kind: "k", Queue: qn, NotBefore: at, Payload: []byte("keyless")}
	require.NoError(t, b.Enqueue(ctx, keyless))
	mk := func(id, key, payload string) *task.Task {
		return &task.Task{ID: id, Key: key, Kind: "k", Queue: qn, NotBefore: at, Payload: []byte(payload)}
	}
	tasks := []*task.Task{mk("same", "k1", "k1"), mk("same", "k2", "k2"), mk(keyless.ID, "", "given-id")}
	require.NoError(t, b.Enqueue(ctx, tasks...))
	for _, tk := range tasks {
		require.False(t, task.Dropped(tk), "%s is stored", tk.Payload)
	}
	want := map[string]bool{"keyless": true, "k1": true, "k2": true, "given-id": true}
	for range len(want) {
		d := leaseOne(t, b, qn)
		require.True(t, want[string(d.Task.Payload)], "%s delivered once", d.Task.Payload)
		delete(want, string(d.Task.Payload))
		require.NoError(t, b.Ack(ctx, d))
	}
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	extra, err := b.Lease(lctx, qn, 1, time.Second)
	require.ErrorIs(t, err, context.DeadlineExceeded, "nothing more: %v", extra)
}

// TestAProducersKeyMeetsNoGeneratedKeysMarker: a keyless task whose
// success is recorded (its source waits for its outcome, or it
// succeeded on its last attempt) leaves a finished-key marker for its
// generated key; a producer's key written as that id is another key: it
// is stored and worked, not dropped as finished. The two markers shared
// a subject: the producer's task was dropped as succeeded before it ran,
// and, the other way, a producer's key finished made a redelivery of the
// keyless task look finished.
func TestAProducersKeyMeetsNoGeneratedKeysMarker(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "keyspace-done"
	keyless := &task.Task{Kind: "k", Queue: qn, Payload: []byte("keyless")}
	keyless.SetHeader(task.HeaderCompletion, "mailbox")
	require.NoError(t, b.Enqueue(ctx, keyless))
	require.True(t, keyless.KeyGenerated())
	d := leaseOne(t, b, qn)
	require.NoError(t, b.Ack(ctx, d))

	producer := &task.Task{Kind: "k", Queue: qn, Key: keyless.ID, Payload: []byte("producer")}
	require.NoError(t, b.Enqueue(ctx, producer))
	require.False(t, task.Dropped(producer), "a producer's key is not the generated one: %v", producer.Headers)
	d = leaseOne(t, b, qn)
	require.Equal(t, "producer", string(d.Task.Payload))
	require.NoError(t, b.Ack(ctx, d))

	// Each space keeps its own marker: the keyless task's success (for
	// its redelivery), and the producer's key, remembered.
	q, err := b.queue(qn)
	require.NoError(t, err)
	o, ok, err := b.finishedBefore(ctx, q, keyless.Key, false, time.Time{})
	require.NoError(t, err)
	require.True(t, ok && o == task.Succeeded, "the keyless task's marker stands")
	require.Eventually(t, func() bool {
		_, ok, err := b.finishedBefore(ctx, q, keyless.Key, true, time.Time{})
		return err == nil && ok
	}, 5*time.Second, 10*time.Millisecond, "the producer's key is remembered")
	// Both are found by the key, once the server has the producer's ack
	// (Ack does not wait for it: until then its message is in flight too).
	var f queue.TaskSearch
	require.Eventually(t, func() bool {
		f, err = b.FindTasks(ctx, qn, queue.TaskLookup{Key: keyless.ID})
		return err == nil && len(f.Found) == 2
	}, 5*time.Second, 10*time.Millisecond, "both are found by the key")
	again := &task.Task{Kind: "k", Queue: qn, Key: keyless.ID, Payload: []byte("again")}
	require.NoError(t, b.Enqueue(ctx, again))
	require.True(t, task.Dropped(again), "the producer's key finished")
}

// TestADelayedTaskScheduledBeforeIsReplacedWhenEnqueuedAgain: a delayed
// task whose key is its id, scheduled by a version that named every
// schedule by the task's id alone, and enqueued again after the
// duplicate window (which no longer refuses it) replaces that schedule
// as it did then: it is delivered once. Named by its id and Nats-Msg-Id,
// it had a second schedule and ran twice.
func TestADelayedTaskScheduledBeforeIsReplacedWhenEnqueuedAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const window = time.Second
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, DuplicateWindow: window, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	if !b.scheduling() {
		t.Skip("the server has no message schedules")
	}
	const qn = "keyspace-sched-upgrade"
	at := time.Now().Add(3 * window)
	mk := func() *task.Task {
		tk := &task.Task{ID: "reminder-1", Kind: "k", Queue: qn, NotBefore: at, Payload: []byte("reminder")}
		tk.Prepare(time.Now())
		return tk
	}
	// The queue set up (by a task of its own, worked), then the delayed
	// task's schedule as the version before wrote it.
	require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: qn}))
	require.NoError(t, b.Ack(ctx, leaseOne(t, b, qn)))
	old := mk()
	q, err := b.queue(qn)
	require.NoError(t, err)
	tm := encodeTaskMsg(old, msgSpec{subject: q.schedPrefix + schedToken(old.ID), msgID: msgIDOf(old.Key, false), keyed: true, keepID: true, extra: 2})
	tm.msg.Header[hdrSchedule] = []string{"@at " + at.UTC().Format(time.RFC3339Nano)}
	tm.msg.Header[hdrScheduleTarget] = []string{q.subject}
	_, err = b.js.PublishMsg(ctx, &tm.msg)
	require.NoError(t, err)

	time.Sleep(window + 200*time.Millisecond)
	again := mk()
	require.NoError(t, b.Enqueue(ctx, again))
	require.False(t, task.Dropped(again), "past the window, stored")

	d := leaseOne(t, b, qn)
	require.Equal(t, "reminder-1", d.Task.ID)
	require.NoError(t, b.Ack(ctx, d))
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	extra, err := b.Lease(lctx, qn, 1, time.Second)
	require.ErrorIs(t, err, context.DeadlineExceeded, "delivered once: %v", extra)
}
