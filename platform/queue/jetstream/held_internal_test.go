package jetstream

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// lastSeq is the sequence of the message last stored on q's work stream.
func lastSeq(t *testing.T, q *queueState) uint64 {
	t.Helper()
	info, err := q.workStream().Info(t.Context())
	require.NoError(t, err)
	return info.State.LastSeq
}

// A duplicate's publish ack names the stored message; markHeld reads it:
// another task's message marks the duplicate held by that task; the task's
// own message (the same Task, a copy with its ID, or any duplicate of a
// key Prepare generated) marks nothing; a message gone since (its task
// finished between the finished-key check and the publish) marks the
// duplicate finished as the key's marker says; a message that cannot be
// found or read, with no marker, marks it held by an unknown task.
func TestDuplicateMarksFollowTheStoredMessage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	q, err := b.queue("held")
	require.NoError(t, err)
	now := time.Now()
	newTask := func(key string) *task.Task {
		tk := &task.Task{Kind: "k", Queue: "held", Key: key}
		tk.Prepare(now)
		return tk
	}

	holder := &task.Task{Kind: "k", Queue: "held", Key: "live"}
	require.NoError(t, b.Enqueue(ctx, holder))
	holderSeq := lastSeq(t, q)
	finishing := &task.Task{Kind: "k", Queue: "held", Key: "finishing"}
	require.NoError(t, b.Enqueue(ctx, finishing))
	finishingSeq := lastSeq(t, q)
	for range 2 {
		d := leaseOne(t, b, "held")
		if d.Task.ID == finishing.ID {
			require.NoError(t, b.Ack(ctx, d))
		} else {
			defer func() { require.NoError(t, b.Ack(context.Background(), d)) }()
		}
	}

	require.Eventually(t, func() bool {
		_, err := q.workStream().GetMsg(ctx, finishingSeq)
		return err != nil
	}, 10*time.Second, 10*time.Millisecond, "the acked message leaves the work stream")

	other, self, copied, generated := newTask("live"), holder, holder.Clone(), newTask("")
	late, lost := newTask("finishing"), newTask("never-stored")
	tasks := []*task.Task{other, self, copied, generated, late, lost}
	qs := []*queueState{q, q, q, q, q, q}
	b.markHeld(ctx, tasks, qs, []dupPub{
		{0, holderSeq}, {1, holderSeq}, {2, holderSeq}, {3, holderSeq}, {4, finishingSeq}, {5, holderSeq + 1000},
	}, nil)
	by, ok := task.Held(other)
	require.True(t, ok, "another task's duplicate is held")
	require.Equal(t, holder.ID, by)
	for name, tk := range map[string]*task.Task{"the task itself": self, "a copy with its id": copied, "a generated key": generated} {
		_, held := task.Held(tk)
		_, _, finished := task.Finished(tk)
		require.False(t, held || finished, "%s is its own holder: unmarked", name)
		require.True(t, task.StoredAgain(tk), "%s is marked stored already", name)
	}
	o, _, ok := task.Finished(late)
	require.True(t, ok, "a holder gone since the check is told by its marker")
	require.Equal(t, task.Succeeded, o)
	_, held := task.Held(late)
	require.False(t, held)
	by, ok = task.Held(lost)
	require.True(t, ok, "a holder that cannot be found still holds the key")
	require.Empty(t, by)

	// The stored message unreadable (the call's context ended): held by
	// an unknown task, never unmarked as if stored.
	ended, cancel := context.WithCancel(ctx)
	cancel()
	blind := newTask("live")
	b.markHeld(ended, []*task.Task{blind}, []*queueState{q}, []dupPub{{0, holderSeq}}, nil)
	by, ok = task.Held(blind)
	require.True(t, ok)
	require.Empty(t, by)
}

// A duplicate of a task whose settlement claimed its message (the key's
// marker is that message's claim) and whose term or ack the server has
// not yet heard is marked finished as the claim says, not held by a task
// still queued: an enqueue answered "in flight" while the task's dead
// letter was listed. A final marker that is not the holder's own claim
// (an earlier task's of the key) leaves the duplicate held.
func TestDuplicateOfAClaimedTaskIsFinished(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	q, err := b.queue("claimed")
	require.NoError(t, err)
	again := func(key string) *task.Task {
		tk := &task.Task{Kind: "k", Queue: "claimed", Key: key}
		tk.Prepare(time.Now())
		return tk
	}

	holder := &task.Task{Kind: "k", Queue: "claimed", Key: "claimed"}
	require.NoError(t, b.Enqueue(ctx, holder))
	d := leaseOne(t, b, "claimed")
	r := d.Receipt.(*receipt)
	r.mu.Lock()
	require.NoError(t, b.claim(ctx, r, task.DeadLettered, "refused"))
	r.mu.Unlock()
	dup := again("claimed")
	b.markHeld(ctx, []*task.Task{dup}, []*queueState{q}, []dupPub{{0, r.seq}}, nil)
	o, reason, ok := task.Finished(dup)
	require.True(t, ok, "the holder's own claim says it finished")
	require.Equal(t, task.DeadLettered, o)
	require.Equal(t, "refused", reason)
	_, held := task.Held(dup)
	require.False(t, held)

	// A final marker of the key that is not the holder's claim (written
	// as an earlier task's marker would be, without the holder's id).
	older := &task.Task{Kind: "k", Queue: "claimed", Key: "older"}
	require.NoError(t, b.Enqueue(ctx, older))
	_, err = b.js.PublishMsg(ctx, &nats.Msg{Subject: q.doneSubject("older", true), Data: doneData(task.Succeeded, "")})
	require.NoError(t, err)
	dup = again("older")
	b.markHeld(ctx, []*task.Task{dup}, []*queueState{q}, []dupPub{{0, lastSeq(t, q)}}, nil)
	by, held := task.Held(dup)
	require.True(t, held, "a marker that is not the holder's claim leaves it held")
	require.Equal(t, older.ID, by)
}
