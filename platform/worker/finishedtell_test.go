package worker_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/queuetest"
	"github.com/plba/plba/platform/task"
)

// finishing is a backend that finds tasks delivered again after they
// succeeded (queue.FinishedWatcher), as JetStream does; the test says
// when it found one.
type finishing struct {
	*queuetest.Faulty
	mu sync.Mutex
	fn func(*task.Task)
}

func (b *finishing) WatchFinished(fn func(*task.Task)) {
	b.mu.Lock()
	b.fn = fn
	b.mu.Unlock()
}

func (b *finishing) found(t *testing.T, tk *task.Task) {
	b.mu.Lock()
	fn := b.fn
	b.mu.Unlock()
	require.NotNil(t, fn, "the runtime watches for finished tasks")
	fn(tk)
}

var _ queue.FinishedWatcher = (*finishing)(nil)

// TestTaskFoundSucceededIsToldToItsSource: an ack whose answer was lost
// after the success was recorded is a failed settlement, and the pool
// does not tell the source. The backend then finds the task's redelivery
// succeeded and removes it without handing it out (JetStream's
// dropFinished): reported through queue.FinishedWatcher, the runtime tells
// the source task.Succeeded, and counts nothing more. Nothing told it
// before: a source waiting for the outcome never heard it.
func TestTaskFoundSucceededIsToldToItsSource(t *testing.T) {
	t.Parallel()
	be := &finishing{Faulty: queuetest.NewFaulty(newMemory(t))}
	acked := make(chan *task.Task, 1)
	be.Inject(queuetest.OpAck, queuetest.Fault{Times: 1, Applied: true, Err: errors.New("ack: no answer"),
		Entered: func(t *task.Task) { acked <- t.Clone() }})
	src := &inbox{emit: []string{"o1"}}
	rt := startInbox(t, be, fast, src, orderRoute, nil)
	p, _ := rt.Pool("orders")

	var tk *task.Task
	select {
	case tk = <-acked:
	case <-time.After(10 * time.Second):
		t.Fatal("the task was never acked")
	}
	require.Eventually(t, func() bool { return p.Stats().SettleFailed.Ack == 1 }, 10*time.Second, time.Millisecond)
	require.Empty(t, src.snapshot(), "the pool tells nothing of a failed ack")

	be.found(t, tk) // its redelivery, found succeeded
	require.Eventually(t, func() bool { return len(src.snapshot()) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, map[string][]task.Outcome{"o1": {task.Succeeded}}, src.snapshot())
	st := p.Stats()
	require.Zero(t, st.Succeeded, "the lost ack was not counted a success, nor is the finding")
	require.Zero(t, st.CompletionFailed)

	// A task without a source is not told to anyone.
	be.found(t, &task.Task{ID: "x", Kind: "mail.order", Queue: "orders", Payload: []byte("x")})
	require.Never(t, func() bool { return len(src.snapshot()) != 1 }, 200*time.Millisecond, 10*time.Millisecond,
		"a task without a source told to a source")
}
