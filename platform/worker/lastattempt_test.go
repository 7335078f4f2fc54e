package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// lastRecorder is a memory backend that records, for each Ack and Retry,
// the attempt settled and whether the pool marked it the last.
type lastRecorder struct {
	*memory.Backend
	mu   sync.Mutex
	seen []string
}

func (b *lastRecorder) note(how string, d *queue.Delivery) {
	b.mu.Lock()
	defer b.mu.Unlock()
	last := "not last"
	if d.Last {
		last = "last"
	}
	b.seen = append(b.seen, fmt.Sprintf("%s %s %d %s", how, d.Task.ID, d.Task.Attempt, last))
}

func (b *lastRecorder) Ack(ctx context.Context, d *queue.Delivery) error {
	b.note("ack", d)
	return b.Backend.Ack(ctx, d)
}

func (b *lastRecorder) Retry(ctx context.Context, d *queue.Delivery, at time.Time) error {
	b.note("retry", d)
	return b.Backend.Retry(ctx, d, at)
}

func (b *lastRecorder) snapshot() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen...)
}

// The pool tells the backend which settlement ends a task's last attempt
// (queue.Delivery.Last), by the route's max attempts: a backend that
// remembers finished tasks records that success even for a generated key
// (JetStream), so that a lost ack does not bring the task back past its
// last attempt to be dead-lettered. Earlier attempts are not marked.
func TestPoolMarksTheLastAttempt(t *testing.T) {
	t.Parallel()
	be := &lastRecorder{Backend: newMemory(t)}
	cfg := fast
	cfg.MaxAttempts = 5
	fails := map[string]int{"once": 1, "twice": 2}
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"default": cfg},
		Routes: []task.Route{
			{Kind: "k", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
				if tk.Attempt <= fails[tk.ID] {
					return errors.New("not yet")
				}
				return nil
			})},
			{Kind: "three", MaxAttempts: 3, Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
				if tk.Attempt < 3 {
					return errors.New("not yet")
				}
				return nil
			})},
		}})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, rt.Stop(context.Background())) })
	require.NoError(t, rt.Producer().Enqueue(context.Background(),
		&task.Task{ID: "once", Kind: "k"}, &task.Task{ID: "twice", Kind: "k"}, &task.Task{ID: "third", Kind: "three"}))
	require.Eventually(t, func() bool { return len(be.snapshot()) == 8 }, 10*time.Second, 2*time.Millisecond)
	require.ElementsMatch(t, []string{
		"retry once 1 not last", "ack once 2 not last",
		"retry twice 1 not last", "retry twice 2 not last", "ack twice 3 not last",
		"retry third 1 not last", "retry third 2 not last", "ack third 3 last",
	}, be.snapshot())
}
