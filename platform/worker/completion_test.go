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

// inbox is a completing source: it emits its tasks (if any) and records
// the completions it is told about.
type inbox struct {
	emit []string
	fail atomic.Int64 // completions to fail before succeeding

	mu      sync.Mutex
	results map[string][]task.Outcome
	reasons map[string]string
}

func (s *inbox) Name() string { return "inbox" }

func (s *inbox) Run(ctx context.Context, emit source.Emitter) error {
	for _, p := range s.emit {
		if err := emit.Emit(ctx, &task.Task{Kind: "mail.order", Payload: []byte(p)}); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

func (s *inbox) Complete(_ context.Context, t *task.Task, o task.Outcome, reason string) error {
	if s.fail.Add(-1) >= 0 {
		return errors.New("imap server unavailable")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.results == nil {
		s.results, s.reasons = map[string][]task.Outcome{}, map[string]string{}
	}
	s.results[string(t.Payload)] = append(s.results[string(t.Payload)], o)
	s.reasons[string(t.Payload)] = reason
	return nil
}

func (s *inbox) snapshot() map[string][]task.Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]task.Outcome, len(s.results))
	for k, v := range s.results {
		out[k] = append([]task.Outcome(nil), v...)
	}
	return out
}

var orderRoute = task.Route{Kind: "mail.order", Queue: "orders", MaxAttempts: 3, Handler: task.HandlerFunc(func(_ context.Context, t *task.Task) error {
	if string(t.Payload) == "spam" {
		return task.Permanentf("not an order")
	}
	return nil
})}

// TestCompletionCrossesProcesses: the completion is routed by the source's
// name carried in the task's headers, not by anything in memory of the
// emitting process, so it reaches the source of the same name in whichever
// process handles the task. Two runtimes share one backend here: A only
// emits (its pools never start), B handles and completes.
func TestCompletionCrossesProcesses(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	cfg := worker.Config{"orders": fast}
	emitter := &inbox{emit: []string{"o1", "o2", "spam"}}
	a, err := worker.New(worker.Params{Backend: be, Config: cfg, Routes: []task.Route{orderRoute}, Sources: []source.Source{emitter}})
	require.NoError(t, err)
	require.NoError(t, a.StartSources(context.Background()))
	defer func() { require.NoError(t, a.Stop(context.Background())) }()

	handler := &inbox{}
	b, err := worker.New(worker.Params{Backend: be, Config: cfg, Routes: []task.Route{orderRoute}, Sources: []source.Source{handler}})
	require.NoError(t, err)
	require.NoError(t, b.Start(context.Background()))
	defer func() { require.NoError(t, b.Stop(context.Background())) }()

	require.Eventually(t, func() bool { return len(handler.snapshot()) == 3 }, 10*time.Second, time.Millisecond)
	require.Equal(t, map[string][]task.Outcome{
		"o1": {task.Succeeded}, "o2": {task.Succeeded}, "spam": {task.DeadLettered},
	}, handler.snapshot())
	handler.mu.Lock()
	require.Equal(t, "not an order", handler.reasons["spam"])
	handler.mu.Unlock()
	require.Empty(t, emitter.snapshot(), "the emitting process handled nothing")
}

// TestFailedCompletionIsRetried: a completion that fails makes the
// delivery fail, so the task is retried and the completion made again (at
// least once); the task is acked only after a completion succeeded.
func TestFailedCompletionIsRetried(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	src := &inbox{emit: []string{"o1"}}
	src.fail.Store(2)
	var runs atomic.Int64
	route := orderRoute
	route.MaxAttempts = 5
	route.Handler = task.HandlerFunc(func(context.Context, *task.Task) error { runs.Add(1); return nil })
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": fast}, Routes: []task.Route{route}, Sources: []source.Source{src}})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	defer func() { require.NoError(t, rt.Stop(context.Background())) }()

	require.Eventually(t, func() bool { return len(src.snapshot()) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, []task.Outcome{task.Succeeded}, src.snapshot()["o1"])
	require.Equal(t, int64(3), runs.Load(), "the handler ran again with each failed completion")
	p, _ := rt.Pool("orders")
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 1 }, 5*time.Second, time.Millisecond)
	st := p.Stats()
	require.Equal(t, int64(2), st.Retried)
	require.Contains(t, st.LastError, "imap server unavailable")
	qs, err := be.Stats(context.Background(), "orders")
	require.NoError(t, err)
	require.Zero(t, qs.Ready+qs.Delayed+qs.InFlight+qs.Dead)
}

// TestHandledTaskIsNeverReportedDeadLettered: when the handler succeeds
// but telling the source fails on every attempt, the task ends in the
// dead letter with that reason, and the source never hears
// "dead-lettered" for work that was done (it would file the message as
// failed); it was not told anything, so it emits the message again later.
func TestHandledTaskIsNeverReportedDeadLettered(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	src := &inbox{emit: []string{"o1"}}
	src.fail.Store(3) // exactly the attempts: a later completion would get through
	var runs atomic.Int64
	route := orderRoute
	route.MaxAttempts = 3
	route.Handler = task.HandlerFunc(func(context.Context, *task.Task) error { runs.Add(1); return nil })
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": fast}, Routes: []task.Route{route}, Sources: []source.Source{src}})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	defer func() { require.NoError(t, rt.Stop(context.Background())) }()

	p, _ := rt.Pool("orders")
	require.Eventually(t, func() bool { return p.Stats().Dead == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, int64(3), runs.Load())
	dead, err := be.ListDead(context.Background(), "orders", 10)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Contains(t, dead[0].Reason, "handled, but its source could not be told")
	require.Contains(t, dead[0].Reason, "imap server unavailable")
	require.Empty(t, src.snapshot(), "no completion reached the source, in particular no dead letter")
}
