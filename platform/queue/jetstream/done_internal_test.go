package jetstream

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// Both ways of looking finished keys up (one batched direct get, and one
// get per key for servers before 2.11) find the same keys, across two
// queues and with a key repeated in the batch.
func TestFinishedLookups(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	require.True(t, b.multiGet, "the embedded server answers batched direct gets")
	q1, err := b.queue("one")
	require.NoError(t, err)
	q2, err := b.queue("two")
	require.NoError(t, err)
	require.NoError(t, b.markDone(ctx, q1, "a", true, task.Succeeded, ""))
	require.NoError(t, b.markDone(ctx, q2, "b", true, task.DeadLettered, "bad input"))
	tasks := []*task.Task{{Key: "a", Queue: "one"}, {Key: "a", Queue: "two"}, {Key: "b", Queue: "two"}, {Key: "c", Queue: "one"}, {Key: "a", Queue: "one"}}
	qs := []*queueState{q1, q2, q2, q1, q1}
	ok, dead := doneMark{true, []byte("succeeded")}, doneMark{true, []byte("dead_lettered\nbad input")}
	want := []doneMark{ok, {}, dead, {}, ok}
	got, err := b.finished(ctx, tasks, qs)
	require.NoError(t, err)
	require.Equal(t, want, got, "batched")
	got = make([]doneMark, len(tasks))
	require.NoError(t, b.finishedOneByOne(ctx, tasks, qs, got))
	require.Equal(t, want, got, "one by one")
}

// A batch of more keys than one batched get may ask for is looked up in
// chunks, and every finished key is found.
func TestFinishedLookupsInChunks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	q, err := b.queue("big")
	require.NoError(t, err)
	const n = maxLastFor + 500
	tasks := make([]*task.Task, n)
	qs := make([]*queueState, n)
	for i := range tasks {
		tasks[i] = &task.Task{Key: strconv.Itoa(i), Queue: "big"}
		qs[i] = q
		if i%2 == 0 {
			require.NoError(t, b.markDone(ctx, q, tasks[i].Key, true, task.Succeeded, ""))
		}
	}
	got, err := b.finished(ctx, tasks, qs)
	require.NoError(t, err)
	for i, m := range got {
		require.Equal(t, i%2 == 0, m.done, "key %d", i)
	}
}

// A re-drive records its key as queued again only over the marker it saw
// before it published the task: when the re-driven task finished in
// between, its marker (the real outcome) stands.
func TestQueuedAgainMarkerKeepsANewerOutcome(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	q, err := b.queue("redrive")
	require.NoError(t, err)
	lookup := func(key string) doneMark {
		got, err := b.finished(ctx, []*task.Task{{Key: key, Queue: "redrive"}}, []*queueState{q})
		require.NoError(t, err)
		return got[0]
	}

	// No marker yet, and none meanwhile: the key is recorded as queued.
	prev, _, err := b.doneMarker(ctx, q, "fresh", true)
	require.NoError(t, err)
	require.Zero(t, prev)
	require.NoError(t, b.markQueuedAgain(ctx, q, "fresh", prev))
	m := lookup("fresh")
	require.True(t, m.done, "a duplicate of the queued key is dropped")
	require.Empty(t, m.data, "and not marked with an outcome")

	// The dead letter's marker, then the re-driven task's success before
	// the re-drive records the key: the success stands.
	require.NoError(t, b.markDone(ctx, q, "k", true, task.DeadLettered, "bad"))
	prev, _, err = b.doneMarker(ctx, q, "k", true)
	require.NoError(t, err)
	require.NotZero(t, prev)
	require.NoError(t, b.markDone(ctx, q, "k", true, task.Succeeded, ""))
	require.NoError(t, b.markQueuedAgain(ctx, q, "k", prev))
	require.Equal(t, doneMark{done: true, data: []byte("succeeded")}, lookup("k"))
}
