package jetstream

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestRecycledMessagesKeepEveryTask: Enqueue recycles the messages the
// server acknowledged (taskMsg.recycle) for the tasks of the next calls;
// every task, of the first call or a later one, is delivered as it was
// enqueued (fields, headers, payload), whatever the message it reused
// carried before: more or fewer headers, a longer HeaderTask, a schedule.
func TestRecycledMessagesKeepEveryTask(t *testing.T) {
	ctx := t.Context()
	b := openTestBackend(t, Config{Mode: ModeEmbedded, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	want := map[string]*task.Task{}
	for round := range 6 {
		var tasks []*task.Task
		for i := range 20 {
			tk := &task.Task{
				ID: fmt.Sprintf("r%d-%d", round, i), Kind: fmt.Sprintf("kind-%d", round%3),
				Queue: "recycle", Payload: []byte(strings.Repeat(fmt.Sprint(round), i)),
			}
			switch (round + i) % 4 {
			case 0:
				tk.Headers = map[string]string{"traceparent": fmt.Sprintf("00-0af7651916cd43dd8448eb211c8031%02d-b7ad6b7169203331-01", i)}
			case 1:
				tk.Key = fmt.Sprintf("a much longer key of round %d and task %d %s", round, i, strings.Repeat("x", 100))
				tk.Headers = map[string]string{"h1": "v1", "h2": fmt.Sprint(round), "h3": "v3", "h4": "v4", "h5": "v5"}
			case 2:
				tk.NotBefore = time.Now().Add(200 * time.Millisecond) // a schedule, or a delayed first delivery
			}
			tasks = append(tasks, tk)
		}
		require.NoError(t, b.Enqueue(ctx, tasks...))
		for _, tk := range tasks {
			c := *tk
			want[tk.ID] = &c
		}
	}
	for len(want) > 0 {
		d := leaseOne(t, b, "recycle")
		w, ok := want[d.Task.ID]
		require.True(t, ok, "task %q delivered once", d.Task.ID)
		delete(want, d.Task.ID)
		got := d.Task
		require.Equal(t, w.Kind, got.Kind, w.ID)
		require.Equal(t, w.Key, got.Key, w.ID)
		require.Equal(t, string(w.Payload), string(got.Payload), w.ID)
		require.True(t, w.EnqueuedAt.Equal(got.EnqueuedAt), w.ID)
		require.True(t, w.NotBefore.Equal(got.NotBefore), w.ID)
		if len(w.Headers) == 0 {
			require.Empty(t, got.Headers, w.ID)
		} else {
			require.Equal(t, w.Headers, got.Headers, w.ID)
		}
		require.NoError(t, b.Ack(ctx, d))
	}
}

// TestEnqueueRecyclesItsMessages: a task's message costs Enqueue no
// allocation of its own once an earlier Enqueue's were acknowledged: the
// taskMsg, its header map and the map's slots (3 per task) are reused.
func TestEnqueueRecyclesItsMessages(t *testing.T) {
	if raceEnabled {
		// sync.Pool drops a random quarter of what it is given there: 2.3
		// and 1.94 per task seen, a measure of the detector, not of Enqueue.
		t.Skip("allocation counts of recycled messages are not measured under the race detector")
	}
	ctx := t.Context()
	b := openTestBackend(t, Config{Mode: ModeEmbedded, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const batch = 50
	newBatch := func() []*task.Task {
		tasks := make([]*task.Task, batch)
		for i := range tasks {
			tasks[i] = &task.Task{Kind: "k", Queue: "allocs", Payload: make([]byte, 128),
				Headers: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}}
		}
		return tasks
	}
	enqueue := func() {
		if err := b.Enqueue(ctx, newBatch()...); err != nil {
			panic(err)
		}
	}
	enqueue() // the queue set up, the pool filled
	withPool := testing.AllocsPerRun(20, enqueue)
	without := testing.AllocsPerRun(20, func() {
		for range 2 * batch {
			taskMsgs.Get() // empty the pool: every message allocated again
		}
		enqueue()
	})
	perTask := (without - withPool) / batch
	t.Logf("allocations per Enqueue of %d tasks: %.1f with recycled messages, %.1f without (%.2f per task)", batch, withPool, without, perTask)
	// 3 per task: the taskMsg, its map and its slots.
	require.GreaterOrEqual(t, perTask, 2.0, "3 per task: the taskMsg, its map and its slots")
}
