package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/queue/queuetest"
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

// startInbox starts a runtime on be whose source is src and whose only
// route is route, and stops it when the test ends.
func startInbox(t *testing.T, be queue.Backend, cfg worker.PoolConfig, src *inbox, route task.Route, obs task.Observer) *worker.Runtime {
	t.Helper()
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": cfg}, Routes: []task.Route{route},
		Sources: []source.Source{src}, Observer: obs})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, rt.Stop(context.Background())) })
	return rt
}

// requireEmpty checks that queue q of be holds nothing, dead letters
// included.
func requireEmpty(t *testing.T, be queue.Backend, q string) {
	t.Helper()
	qs, err := be.Stats(context.Background(), q)
	require.NoError(t, err)
	require.Zero(t, qs.Ready+qs.Delayed+qs.InFlight+qs.Dead, "%+v", qs)
}

// TestFailedCompletionKeepsTheAck: a task whose handler succeeded is acked
// whatever its source says; a completion that fails is counted and
// logged, and neither runs the handler again nor uses an attempt. It used
// to fail the attempt: the handler ran again with each failed completion.
func TestFailedCompletionKeepsTheAck(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	src := &inbox{emit: []string{"o1"}}
	src.fail.Store(1)
	var runs atomic.Int64
	route := orderRoute
	route.Handler = task.HandlerFunc(func(context.Context, *task.Task) error { runs.Add(1); return nil })
	rt := startInbox(t, be, fast, src, route, nil)

	p, _ := rt.Pool("orders")
	require.Eventually(t, func() bool { return p.Stats().Processed == 1 }, 10*time.Second, time.Millisecond)
	st := p.Stats()
	require.Equal(t, int64(1), st.Succeeded)
	require.Equal(t, int64(1), st.CompletionFailed)
	require.Zero(t, st.Retried)
	require.Zero(t, st.Failed)
	require.Contains(t, st.LastError, "imap server unavailable")
	require.Equal(t, int64(1), runs.Load(), "the handler ran once")
	require.Empty(t, src.snapshot(), "the one completion failed, and the pool does not retry it")
	requireEmpty(t, be, "orders")
}

// TestHandledTaskIsNeverDeadLettered: a source that cannot be told at all
// never turns a handled task into a dead letter. It used to take every
// attempt, then dead-letter the task ("handled, but its source could not
// be told").
func TestHandledTaskIsNeverDeadLettered(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	src := &inbox{emit: []string{"o1", "o2"}}
	src.fail.Store(1 << 30)
	route := orderRoute
	route.MaxAttempts = 1
	rt := startInbox(t, be, fast, src, route, nil)

	p, _ := rt.Pool("orders")
	require.Eventually(t, func() bool { return p.Stats().Processed == 2 }, 10*time.Second, time.Millisecond)
	st := p.Stats()
	require.Equal(t, int64(2), st.Succeeded)
	require.Equal(t, int64(2), st.CompletionFailed)
	require.Zero(t, st.Dead)
	requireEmpty(t, be, "orders")
}

// outcomes records the outcome and error of every delivery the observer
// sees finish.
type outcomes struct {
	task.NopObserver
	mu   sync.Mutex
	outs []task.Outcome
	errs []error
}

func (o *outcomes) Finished(_ context.Context, _ *task.Task, out task.Outcome, err error, _ string, _ time.Duration) {
	o.mu.Lock()
	o.outs = append(o.outs, out)
	o.errs = append(o.errs, err)
	o.mu.Unlock()
}

func (o *outcomes) snapshot() ([]task.Outcome, []error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]task.Outcome(nil), o.outs...), append([]error(nil), o.errs...)
}

// shortLease lets a delivery whose settlement failed come back soon.
const shortLease = 300 * time.Millisecond

// TestFailedAckIsNotASuccess: an ack the backend refuses is no success: not
// counted as succeeded, reported as returned with the ack's error, the
// source not told; the delivery comes back when its lease ends, and the
// source hears "succeeded" once, after the ack that went through. The pool
// used to count and report the refused ack as a success, and tell the
// source before acking. An ack that panics (a broken backend) is the same
// refused ack; it used to be reported as returned without being counted.
func TestFailedAckIsNotASuccess(t *testing.T) {
	t.Parallel()
	for name, refuse := range refusals {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			be := queuetest.NewFaulty(newMemory(t))
			be.Inject(queuetest.OpAck, refuse("connection reset", 1))
			src := &inbox{emit: []string{"o1"}}
			var runs atomic.Int64
			route := orderRoute
			route.Handler = task.HandlerFunc(func(context.Context, *task.Task) error { runs.Add(1); return nil })
			obs := &outcomes{}
			cfg := fast
			cfg.Lease = shortLease
			rt := startInbox(t, be, cfg, src, route, obs)

			p, _ := rt.Pool("orders")
			// Succeeded counts at the ack, Processed and the observer after it.
			require.Eventually(t, func() bool {
				st := p.Stats()
				outs, _ := obs.snapshot()
				return st.Succeeded == 1 && st.Processed == 2 && len(outs) == 2
			}, 10*time.Second, time.Millisecond)
			st := p.Stats()
			require.Equal(t, worker.SettleFailures{Ack: 1}, st.SettleFailed)
			require.Equal(t, int64(2), st.Processed)
			require.Equal(t, int64(2), runs.Load(), "the unacked task ran again")
			require.Equal(t, map[string][]task.Outcome{"o1": {task.Succeeded}}, src.snapshot())
			outs, errs := obs.snapshot()
			require.Equal(t, []task.Outcome{task.Returned, task.Succeeded}, outs)
			require.ErrorContains(t, errs[0], "ack task ")
			require.ErrorContains(t, errs[0], "connection reset")
			require.NoError(t, errs[1])
			requireEmpty(t, be, "orders")
		})
	}
}

// TestFailedRetryAndDeadLetterAreNotDone: a retry or a dead letter the
// backend refuses is counted as a failed settlement, not as retried or
// dead, and the source hears nothing until the dead letter went through.
// So is one that panics; it used to be reported as returned without
// being counted.
func TestFailedRetryAndDeadLetterAreNotDone(t *testing.T) {
	t.Parallel()
	for name, refuse := range refusals {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			be := queuetest.NewFaulty(newMemory(t))
			be.Inject(queuetest.OpRetry, refuse("stream unavailable", 1))
			be.Inject(queuetest.OpDeadLetter, refuse("stream unavailable", 1))
			src := &inbox{emit: []string{"o1"}}
			route := orderRoute
			route.MaxAttempts = 2
			var runs atomic.Int64
			route.Handler = task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
				runs.Add(1)
				return fmt.Errorf("attempt %d failed", tk.Attempt)
			})
			obs := &outcomes{}
			cfg := fast
			cfg.Lease = shortLease
			rt := startInbox(t, be, cfg, src, route, obs)

			p, _ := rt.Pool("orders")
			// The counter moves before the observer and the source hear of the
			// dead letter: wait for all three.
			require.Eventually(t, func() bool {
				outs, _ := obs.snapshot()
				return p.Stats().Dead == 1 && len(outs) == 3 && len(src.snapshot()["o1"]) == 1
			}, 20*time.Second, time.Millisecond)
			st := p.Stats()
			require.Equal(t, worker.SettleFailures{Retry: 1, DeadLetter: 1}, st.SettleFailed)
			// Attempt 1: retry refused (lease runs out: attempt 2); attempt 2:
			// dead letter refused (attempt 3); attempt 3, past the last,
			// dead-lettered without running the handler again.
			require.Zero(t, st.Retried)
			require.Equal(t, int64(2), st.Failed)
			require.Equal(t, int64(2), runs.Load(), "the handler ran attempts 1 and 2 only")
			outs, _ := obs.snapshot()
			require.Equal(t, []task.Outcome{task.Returned, task.Returned, task.DeadLettered}, outs)
			require.Equal(t, map[string][]task.Outcome{"o1": {task.DeadLettered}}, src.snapshot())
			src.mu.Lock()
			require.Equal(t, "delivered again after its last attempt (attempt 3 of 2): the attempt before it was not settled", src.reasons["o1"])
			src.mu.Unlock()
		})
	}
}

// deadOnRetry is a memory backend with a delivery limit of its own, as
// JetStream's max_deliver: a Retry dead-letters the task instead and says
// so with queue.ErrDeadLettered.
type deadOnRetry struct{ *memory.Backend }

func (b deadOnRetry) Retry(ctx context.Context, d *queue.Delivery, _ time.Time) error {
	if err := b.Backend.DeadLetter(ctx, d, "retry requested after the last of 1 deliveries (max_deliver)"); err != nil {
		return err
	}
	return fmt.Errorf("retry requested after the last of 1 deliveries (max_deliver): %w", queue.ErrDeadLettered)
}

// TestRetryTheBackendDeadLetteredIsADeadLetter: when the backend answers a
// retry by dead-lettering (queue.ErrDeadLettered), the pool counts a dead
// letter, reports one, and tells the source "dead-lettered". It used to
// count a retry and tell the source nothing.
func TestRetryTheBackendDeadLetteredIsADeadLetter(t *testing.T) {
	t.Parallel()
	be := deadOnRetry{newMemory(t)}
	src := &inbox{emit: []string{"o1"}}
	route := orderRoute
	route.MaxAttempts = 5
	route.Handler = task.HandlerFunc(func(context.Context, *task.Task) error { return errors.New("database down") })
	obs := &outcomes{}
	rt := startInbox(t, be, fast, src, route, obs)

	p, _ := rt.Pool("orders")
	require.Eventually(t, func() bool { return p.Stats().Processed == 1 }, 10*time.Second, time.Millisecond)
	st := p.Stats()
	require.Equal(t, int64(1), st.Dead)
	require.Zero(t, st.Retried)
	require.Zero(t, st.SettleFailed.Total())
	outs, _ := obs.snapshot()
	require.Equal(t, []task.Outcome{task.DeadLettered}, outs)
	require.Eventually(t, func() bool { return len(src.snapshot()) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, map[string][]task.Outcome{"o1": {task.DeadLettered}}, src.snapshot())
	src.mu.Lock()
	require.Equal(t, "database down (retry requested after the last of 1 deliveries (max_deliver): queue: dead-lettered by the backend)", src.reasons["o1"])
	src.mu.Unlock()
}

// storedBefore is a memory backend whose dead letters keep the reason of
// a copy stored before, as JetStream's do when a DeadLetter is
// de-duplicated behind one (a term lost, the max-deliveries advisory): it
// gives that reason in Delivery.DeadReason, and its Retry dead-letters
// with Delivery.FailReason in the reason stored.
type storedBefore struct{ *memory.Backend }

func (b storedBefore) DeadLetter(ctx context.Context, d *queue.Delivery, _ string) error {
	if err := b.Backend.DeadLetter(ctx, d, "stored before: lease expired"); err != nil {
		return err
	}
	d.DeadReason = "stored before: lease expired"
	return nil
}

func (b storedBefore) Retry(ctx context.Context, d *queue.Delivery, _ time.Time) error {
	reason := d.FailReason + " (retry requested after the last of 1 deliveries (max_deliver))"
	if err := b.Backend.DeadLetter(ctx, d, reason); err != nil {
		return err
	}
	d.DeadReason = reason
	return fmt.Errorf("retry requested after the last of 1 deliveries (max_deliver): %w", queue.ErrDeadLettered)
}

// TestSourceIsToldTheReasonTheDeadLetterWasStoredWith: a backend that
// stored a task's dead letter with another reason than the one asked
// (queue.Delivery.DeadReason) has the source told that reason, the one
// the dead letter shows; the source used to be told the pool's own. A
// Retry the backend dead-letters is given the handler's error
// (Delivery.FailReason) to store.
func TestSourceIsToldTheReasonTheDeadLetterWasStoredWith(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"dead letter", task.Permanentf("bad order"), "stored before: lease expired"},
		{"retry dead-lettered", errors.New("database down"), "database down (retry requested after the last of 1 deliveries (max_deliver))"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			be := storedBefore{newMemory(t)}
			src := &inbox{emit: []string{"o1"}}
			route := orderRoute
			route.MaxAttempts = 5
			route.Handler = task.HandlerFunc(func(context.Context, *task.Task) error { return c.err })
			startInbox(t, be, fast, src, route, &outcomes{})
			require.Eventually(t, func() bool { return len(src.snapshot()) == 1 }, 10*time.Second, time.Millisecond)
			require.Equal(t, map[string][]task.Outcome{"o1": {task.DeadLettered}}, src.snapshot())
			src.mu.Lock()
			require.Equal(t, c.want, src.reasons["o1"])
			src.mu.Unlock()
			dead, err := be.ListDead(t.Context(), "orders", 0)
			require.NoError(t, err)
			require.Len(t, dead, 1)
			require.Equal(t, c.want, dead[0].Reason, "the dead letter shows what the source was told")
		})
	}
}

// TestRejectedTaskIsDeadLetteredWithoutAHandler: a task carrying
// task.HeaderRejected (a stand-in for one the backend refused) is
// dead-lettered with that reason, its handler never runs, and its source
// is told.
func TestRejectedTaskIsDeadLetteredWithoutAHandler(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	src := &inbox{}
	var runs atomic.Int64
	route := orderRoute
	route.Handler = task.HandlerFunc(func(context.Context, *task.Task) error { runs.Add(1); return nil })
	rt := startInbox(t, be, fast, src, route, nil)

	big := &task.Task{Kind: "mail.order", Payload: []byte("o9")}
	big.SetHeader(task.HeaderCompletion, "inbox")
	stand := task.Rejected(big, "message of 9.1 MiB exceeds the queue's max payload of 8 MiB")
	stand.Payload = []byte("o9") // the inbox records completions by payload
	// Emitted by the source: the producer stores the completion header
	// its emitter sets (source.Emitting), not one a task inherited.
	require.NoError(t, source.NewEmitter(src, rt.Producer()).Emit(context.Background(), stand))

	p, _ := rt.Pool("orders")
	require.Eventually(t, func() bool { return p.Stats().Dead == 1 }, 10*time.Second, time.Millisecond)
	require.Zero(t, runs.Load())
	dead, err := be.ListDead(context.Background(), "orders", 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "message of 9.1 MiB exceeds the queue's max payload of 8 MiB", dead[0].Reason)
	// The pool counts the dead letter, then tells the source.
	require.Eventually(t, func() bool { return len(src.snapshot()) == 1 }, 10*time.Second, time.Millisecond)
	require.Equal(t, map[string][]task.Outcome{"o9": {task.DeadLettered}}, src.snapshot())
}

// TestBackendsOwnDeadLettersReachTheSource: a task the backend dead-letters
// on its own (queue.DeadWatcher; here the memory backend's MaxDeliveries
// after an expired lease) reaches its source as "dead-lettered" with the
// backend's reason, and is counted on its queue's pool.
func TestBackendsOwnDeadLettersReachTheSource(t *testing.T) {
	t.Parallel()
	be := memory.New(memory.Options{MaxDeliveries: 1})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	src := &inbox{emit: []string{"o1"}}
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": fast}, Routes: []task.Route{orderRoute},
		Sources: []source.Source{src}})
	require.NoError(t, err)
	require.NoError(t, rt.StartPools(context.Background()))
	p, _ := rt.Pool("orders")
	p.Pause() // a consumer elsewhere takes the task instead
	require.NoError(t, rt.StartSources(context.Background()))
	t.Cleanup(func() { require.NoError(t, rt.Stop(context.Background())) })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := be.Lease(ctx, "orders", 1, 20*time.Millisecond) // and dies
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Eventually(t, func() bool {
		_, _ = be.Stats(context.Background(), "orders") // the backend notices the expired lease
		return len(src.snapshot()) == 1
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, map[string][]task.Outcome{"o1": {task.DeadLettered}}, src.snapshot())
	src.mu.Lock()
	require.Equal(t, "lease expired 1 times", src.reasons["o1"])
	src.mu.Unlock()
	require.Equal(t, int64(1), p.Stats().Dead)
}

// hangingSource's Complete waits until its context ends, then reports
// how long that took.
type hangingSource struct {
	inbox
	waited chan time.Duration
}

func (s *hangingSource) Complete(ctx context.Context, _ *task.Task, _ task.Outcome, _ string) error {
	begin := time.Now()
	<-ctx.Done()
	s.waited <- time.Since(begin)
	return ctx.Err()
}

// TestCompletionContextIsBounded: Complete gets a context bounded by the
// task timeout; a source that never returns holds a worker no longer, and
// the task stays acked.
func TestCompletionContextIsBounded(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	src := &hangingSource{inbox: inbox{emit: []string{"o1"}}, waited: make(chan time.Duration, 1)}
	cfg := fast
	cfg.TaskTimeout = 200 * time.Millisecond
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"orders": cfg}, Routes: []task.Route{orderRoute},
		Sources: []source.Source{src}})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, rt.Stop(context.Background())) })

	waited := within(t, src.waited, "the completion's context to end")
	require.GreaterOrEqual(t, waited, 150*time.Millisecond)
	p, _ := rt.Pool("orders")
	require.Eventually(t, func() bool { return p.Stats().Processed == 1 }, 10*time.Second, time.Millisecond)
	st := p.Stats()
	require.Equal(t, int64(1), st.Succeeded)
	require.Equal(t, int64(1), st.CompletionFailed)
	requireEmpty(t, be, "orders")
}
