package jetstream

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// A task whose key Prepare generated leaves no finished-key marker when it
// is acked or released (nobody else can enqueue its key), only the claim
// of its dead letter (claim.go);
// a task whose producer chose the key, or only the id, does, and so does
// the released copy of such a task.
func TestGeneratedKeysAreNotRemembered(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "gk"
	mk := func(id, key string) *task.Task { return &task.Task{ID: id, Key: key, Kind: "k", Queue: qn} }
	tasks := []*task.Task{mk("", ""), mk("", ""), mk("", ""), mk("mine", ""), mk("", "order-1"), mk("", "order-2")}
	require.NoError(t, b.Enqueue(ctx, tasks...))
	for i, tk := range tasks {
		require.Equal(t, i < 3, tk.KeyGenerated(), "task %d", i)
	}
	lease := func() *queue.Delivery {
		t.Helper()
		ds, err := b.Lease(ctx, qn, 1, 5*time.Second)
		require.NoError(t, err)
		require.Len(t, ds, 1)
		return ds[0]
	}
	byID := map[string]*task.Task{}
	for _, tk := range tasks {
		byID[tk.ID] = tk
	}
	for range len(tasks) {
		d := lease()
		tk := byID[d.Task.ID]
		require.NotNil(t, tk, "task %s delivered", d.Task.ID)
		require.Equal(t, tk.Key, d.Task.Key, "the key survives the trip")
		switch tk {
		case tasks[1]:
			require.NoError(t, b.DeadLetter(ctx, d, "bad"))
		case tasks[2], tasks[5]:
			require.NoError(t, b.Release(ctx, d))
		default:
			require.NoError(t, b.Ack(ctx, d))
		}
	}
	for range 2 { // the released copies
		c := lease()
		require.Contains(t, []string{tasks[2].ID, tasks[5].ID}, c.Task.ID)
		require.NoError(t, b.Ack(ctx, c))
	}
	q, err := b.queue(qn)
	require.NoError(t, err)
	has := func(key string) bool { // in either space
		for _, keyed := range [...]bool{true, false} {
			_, err := b.done.GetLastMsgForSubject(ctx, q.doneSubject(key, keyed))
			if isMsgNotFound(err) {
				continue
			}
			require.NoError(t, err)
			return true
		}
		return false
	}
	// Acks record their marker asynchronously.
	require.Eventually(t, func() bool { return has("mine") && has("order-1") && has("order-2") }, 10*time.Second, 10*time.Millisecond)
	for _, tk := range []*task.Task{tasks[0], tasks[2]} {
		require.False(t, has(tk.Key), "a generated key %s is not remembered", tk.Key)
	}
	// A dead letter claims its message (claim.go), whatever its key:
	// under the generated key's own subject.
	_, err = b.done.GetLastMsgForSubject(ctx, q.doneSubject(tasks[1].Key, false))
	require.NoError(t, err, "the dead letter's claim")
	info, err := b.done.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 4, info.State.Msgs, "one marker per chosen key, and the dead letter's claim")
}

// A task stored by an earlier version, whose producer chose only the id,
// carries no Plba-Task-Key (the key was left out when it equalled the
// id): its key is still remembered when it finishes, acked or released
// and then acked, as that version would have remembered it. Only a
// message that says its key was generated goes without a marker.
func TestOldMessagesKeepTheirMarker(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "old"
	require.NoError(t, b.Declare(ctx, qn))
	q, err := b.queue(qn)
	require.NoError(t, err)
	for _, id := range []string{"old-acked", "old-released", "old-generated"} {
		// As encodeTask wrote a task whose key is its id before
		// KeyGenerated: no Plba-Task-Id, no Plba-Task-Key; and, before
		// HeaderTask, one whose key Prepare generated.
		m := &nats.Msg{Subject: q.subject, Header: nats.Header{
			HeaderKind:       []string{"k"},
			HeaderEnqueuedAt: []string{formatTime(time.Now())},
			hdrMsgID:         []string{id},
		}}
		if id == "old-generated" {
			m.Header[hdrKeyGenerated] = []string{"1"}
		}
		_, err := b.js.PublishMsg(ctx, m)
		require.NoError(t, err)
	}
	released := map[string]bool{}
	for range 4 {
		ds, err := b.Lease(ctx, qn, 1, 5*time.Second)
		require.NoError(t, err)
		require.Len(t, ds, 1)
		d := ds[0]
		require.Equal(t, d.Task.ID, d.Task.Key)
		if d.Task.ID == "old-released" && !released[d.Task.ID] {
			released[d.Task.ID] = true
			require.NoError(t, b.Release(ctx, d))
			continue
		}
		require.NoError(t, b.Ack(ctx, d))
	}
	has := func(key string) bool { // in either space
		for _, keyed := range [...]bool{true, false} {
			_, err := b.done.GetLastMsgForSubject(ctx, q.doneSubject(key, keyed))
			if isMsgNotFound(err) {
				continue
			}
			require.NoError(t, err)
			return true
		}
		return false
	}
	require.Eventually(t, func() bool { return has("old-acked") && has("old-released") }, 10*time.Second, 10*time.Millisecond,
		"the keys the producers chose are remembered")
	require.False(t, has("old-generated"), "a generated key, marked in the old form, is not remembered")
	dup := &task.Task{ID: "old-acked", Kind: "k", Queue: qn}
	require.NoError(t, b.Enqueue(ctx, dup))
	_, _, finished := task.Finished(dup)
	require.True(t, finished, "a task with the finished key is dropped")
}
