package worker_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// mailbox is a source's outside state (an IMAP folder): items not yet
// marked handled are emitted on every start.
type mailbox struct {
	mu      sync.Mutex
	pending map[string]bool
}

func (m *mailbox) unhandled() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k, v := range m.pending {
		if v {
			out = append(out, k)
		}
	}
	return out
}

// mailSource emits the mailbox's unhandled items and applies completions;
// dead makes it a process that dies before it applies any.
type mailSource struct {
	box  *mailbox
	dead bool
	told atomic.Int64
}

func (s *mailSource) Name() string { return "mailbox" }

func (s *mailSource) Run(ctx context.Context, emit source.Emitter) error {
	for _, id := range s.box.unhandled() {
		if err := emit.Emit(ctx, &task.Task{Kind: "mail.order", Key: id, Payload: []byte(id)}); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

func (s *mailSource) Complete(_ context.Context, t *task.Task, o task.Outcome, _ string) error {
	s.told.Add(1)
	if s.dead {
		return errors.New("process died before the completion was applied")
	}
	if o == task.Succeeded {
		s.box.mu.Lock()
		s.box.pending[string(t.Payload)] = false
		s.box.mu.Unlock()
	}
	return nil
}

// TestDiesAfterAckBeforeCompletion is the crash sequence of
// docs/architecture.md ("Completion"): the handler succeeds, the backend
// acks, and the process dies before its source applied the completion.
// The next process's source, whose state still holds the item as
// unhandled, emits it again; the idempotent handler runs once more
// (nothing changes) and the completion is applied then.
func TestDiesAfterAckBeforeCompletion(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	box := &mailbox{pending: map[string]bool{"m1": true}}
	var (
		mu     sync.Mutex
		orders = map[string]int{} // keyed by message: idempotent
		runs   atomic.Int64
	)
	route := task.Route{Kind: "mail.order", Queue: "orders", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
		runs.Add(1)
		mu.Lock()
		orders[string(tk.Payload)] = 1
		mu.Unlock()
		return nil
	})}
	run := func(src *mailSource) *worker.Runtime {
		rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": fast}, Routes: []task.Route{route},
			Sources: []source.Source{src}})
		require.NoError(t, err)
		require.NoError(t, rt.Start(context.Background()))
		return rt
	}

	first := &mailSource{box: box, dead: true}
	rt := run(first)
	p, _ := rt.Pool("orders")
	require.Eventually(t, func() bool { return first.told.Load() == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, int64(1), p.Stats().Succeeded, "acked although the completion was never applied")
	require.NoError(t, rt.Stop(context.Background()))
	requireEmpty(t, be, "orders")
	require.Equal(t, []string{"m1"}, box.unhandled(), "the source's state still holds the item")

	second := &mailSource{box: box}
	rt = run(second)
	defer func() { require.NoError(t, rt.Stop(context.Background())) }()
	require.Eventually(t, func() bool { return len(box.unhandled()) == 0 }, 10*time.Second, time.Millisecond)
	require.Equal(t, int64(2), runs.Load(), "the handler ran again after the restart")
	mu.Lock()
	require.Equal(t, map[string]int{"m1": 1}, orders, "and changed nothing")
	mu.Unlock()
	requireEmpty(t, be, "orders")
}
