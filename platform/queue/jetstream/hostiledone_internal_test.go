package jetstream

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestForeignFinishedKeyMarkerIsNotAMarker: a message on a key's
// finished-key subject that this backend did not write (data that is
// neither an outcome nor empty: published there with nats pub) does not
// say the key is held or finished: a task with that key is stored. It
// used to be dropped, marked held by a task that did not exist (the
// control API answered 409, a source waited for a completion that
// never came).
func TestForeignFinishedKeyMarkerIsNotAMarker(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{MaxDeliver: 3, AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "donejunk"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "first", Kind: "k", Queue: qn}))
	q, err := b.queue(qn)
	require.NoError(t, err)
	_, err = b.js.Publish(ctx, q.doneSubject("k1", true), []byte("garbage"))
	require.NoError(t, err)
	_, err = b.js.Publish(ctx, q.doneSubject("k2", true), []byte(task.Succeeded))
	require.NoError(t, err)

	t1 := &task.Task{Kind: "k", Queue: qn, Key: "k1"}
	t2 := &task.Task{Kind: "k", Queue: qn, Key: "k2"}
	require.NoError(t, b.Enqueue(ctx, t1, t2))
	_, held := task.Held(t1)
	require.False(t, held, "no task holds k1")
	_, _, finished := task.Finished(t1)
	require.False(t, finished)
	o, _, finished := task.Finished(t2)
	require.True(t, finished, "a marker of this backend's still counts")
	require.Equal(t, task.Succeeded, o)
	// The consumer's count of pending messages follows the stream's
	// shortly after (seen: 1 under load).
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, qn)
		require.NoError(t, err)
		return st.Ready == 2
	}, 10*time.Second, 10*time.Millisecond, "first and k1 are queued")
}
