package worker_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/queue/queuetest"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// nilErr is an error type whose Error method reads its receiver: a nil
// *nilErr returned as an error (a non-nil interface) panics when printed.
type nilErr struct{ msg string }

func (e *nilErr) Error() string { return e.msg }

// textObserver records the text of every error Finished sees, as a
// telemetry observer would print it.
type textObserver struct {
	task.NopObserver
	mu    sync.Mutex
	texts []string
}

func (o *textObserver) Finished(_ context.Context, _ *task.Task, _ task.Outcome, err error, _ string, _ time.Duration) {
	if err != nil {
		o.mu.Lock()
		o.texts = append(o.texts, err.Error())
		o.mu.Unlock()
	}
}

func (o *textObserver) snapshot() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.texts...)
}

// TestUnprintableErrorCountsItsAttempts: a handler that returns a nil
// pointer of an error type (whose Error method panics) fails like any
// other error: retried after the back-off, then dead-lettered with a
// reason describing the panic; the observer gets an error it can print.
// The panic used to escape settlement and crash the worker, whose
// delivery went back uncounted: the task ran again at once, forever.
func TestUnprintableErrorCountsItsAttempts(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	rec := &recorder{}
	obs := &textObserver{}
	cfg := fast
	cfg.MaxAttempts = 3
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"default": cfg}, Observer: obs,
		Routes: []task.Route{{Kind: "poison", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
			rec.record(tk)
			var err *nilErr
			return err
		})}}})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, rt.Stop(context.Background())) })
	require.NoError(t, rt.Producer().Enqueue(context.Background(), &task.Task{Kind: "poison"}))

	const text = "<error *worker_test.nilErr panicked in Error(): runtime error: invalid memory address or nil pointer dereference>"
	var dl []queue.DeadLetter
	require.Eventually(t, func() bool {
		dl, _ = be.ListDead(context.Background(), "default", 0)
		return len(dl) == 1
	}, 10*time.Second, 2*time.Millisecond, "the task never reached the dead letter")
	require.Equal(t, text, dl[0].Reason)
	attempts, _ := rec.snapshot()
	require.Equal(t, []int{1, 2, 3}, attempts, "every attempt counted")

	p, _ := rt.Pool("default")
	require.Eventually(t, func() bool { return p.Stats().Processed == 3 }, 10*time.Second, time.Millisecond)
	st := p.Stats()
	require.Equal(t, int64(3), st.Failed)
	require.Equal(t, int64(2), st.Retried)
	require.Equal(t, int64(1), st.Dead)
	require.Zero(t, st.WorkerRestarts, "settlement did not crash the worker")
	require.Equal(t, text, st.LastError)
	require.Equal(t, []string{text, text, text}, obs.snapshot())
}

// TestPermanentErrorWithoutCauseIsDeadLettered: &task.PermanentError{}
// (no Err) is permanent: dead-lettered at once with a reason saying none
// was given. Its Error method used to dereference the nil Err.
func TestPermanentErrorWithoutCauseIsDeadLettered(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	b := setup(t, fast, task.Route{Kind: "bad", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
		calls.Add(1)
		return &task.PermanentError{}
	})})
	b.enqueue(t, &task.Task{Kind: "bad"})
	dl := b.waitDead(t, "default", 1)
	require.Equal(t, "permanent failure (no reason given)", dl[0].Reason)
	require.Equal(t, int64(1), calls.Load())
	p := b.pool(t, "default")
	require.Eventually(t, func() bool { return p.Stats().Processed == 1 }, 10*time.Second, time.Millisecond)
	st := p.Stats()
	require.Zero(t, st.Retried)
	require.Zero(t, st.WorkerRestarts)
}

// brokenChain is an error whose Unwrap panics: examining its chain (is it
// permanent? does it ask for a delay?) panics while the pool settles.
type brokenChain struct{}

func (brokenChain) Error() string { return "broken chain" }
func (brokenChain) Unwrap() error { panic("unwrap bug") }

// TestPanicWhileSettlingFailsTheAttempt: any panic while settling (here
// in the error's Unwrap) fails the delivery like a handler error, counted,
// so the task ends in the dead letter instead of looping.
func TestPanicWhileSettlingFailsTheAttempt(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	cfg := fast
	cfg.MaxAttempts = 2
	b := setup(t, cfg, task.Route{Kind: "k", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
		rec.record(tk)
		return brokenChain{}
	})})
	b.enqueue(t, &task.Task{Kind: "k"})
	dl := b.waitDead(t, "default", 1)
	require.Equal(t, "panic while settling the task: unwrap bug", dl[0].Reason)
	attempts, _ := rec.snapshot()
	require.Equal(t, []int{1, 2}, attempts)
	p := b.pool(t, "default")
	require.Eventually(t, func() bool { return p.Stats().Processed == 2 }, 10*time.Second, time.Millisecond)
	st := p.Stats()
	require.Equal(t, int64(2), st.Failed)
	require.Equal(t, int64(1), st.Retried)
	require.Equal(t, int64(1), st.Dead)
	require.Zero(t, st.WorkerRestarts)
}

// startPanicObserver panics in Starting. For a kind without a route,
// Starting runs outside the handler's recover: the worker dies holding
// the delivery.
type startPanicObserver struct {
	task.NopObserver
	calls atomic.Int64
}

func (o *startPanicObserver) Starting(context.Context, *task.Task) context.Context {
	o.calls.Add(1)
	panic("observer bug")
}

// TestCrashedWorkerCountsTheAttempt: the delivery of a worker that dies
// outside its handler fails like a handler error (retried, then
// dead-lettered at the last attempt). It used to go back uncounted, and
// the replacement worker ran it again at once, forever.
func TestCrashedWorkerCountsTheAttempt(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	obs := &startPanicObserver{}
	cfg := fast
	cfg.MaxAttempts = 2
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"default": cfg}, Observer: obs})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, rt.Stop(context.Background())) })
	require.NoError(t, rt.Producer().Enqueue(context.Background(), &task.Task{Kind: "unrouted"}))

	var dl []queue.DeadLetter
	require.Eventually(t, func() bool {
		dl, _ = be.ListDead(context.Background(), "default", 0)
		return len(dl) == 1
	}, 10*time.Second, 2*time.Millisecond, "the task never reached the dead letter")
	require.Equal(t, "worker crashed: observer bug", dl[0].Reason)
	require.Equal(t, 2, dl[0].Task.Attempt)
	require.Equal(t, int64(2), obs.calls.Load(), "one run per attempt")
	p, _ := rt.Pool("default")
	require.Eventually(t, func() bool { return p.Stats().Dead == 1 }, 10*time.Second, time.Millisecond)
	st := p.Stats()
	require.Equal(t, int64(2), st.WorkerRestarts)
	require.Equal(t, int64(1), st.Retried)
	require.Equal(t, fast.Concurrency, st.Workers, "replaced")
}

// extendLog is a memory backend that records, per task payload, when
// Extend was called.
type extendLog struct {
	*memory.Backend
	mu      sync.Mutex
	extends map[string][]time.Time
}

func (b *extendLog) Extend(ctx context.Context, d *queue.Delivery, leaseFor time.Duration) error {
	b.mu.Lock()
	b.extends[string(d.Task.Payload)] = append(b.extends[string(d.Task.Payload)], time.Now())
	b.mu.Unlock()
	return b.Backend.Extend(ctx, d, leaseFor)
}

func (b *extendLog) first(payload string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := b.extends[payload]
	if len(ts) == 0 {
		return time.Time{}, false
	}
	return ts[0], true
}

// TestBufferedDeliveryIsExtendedBeforeItRuns: a delivery that waited in
// the hand-over buffer for more than half its lease has its lease
// extended before its handler starts. It used to start on what was left,
// to be extended only on the housekeeper's next round, possibly after the
// lease ended and the backend had given the task to another consumer (it
// then ran twice). B waits at least 5/8 of a lease behind A (the sleep
// guarantees more than half); the margin before its lease ends, against
// scheduling delays, is 3/8 of a lease.
func TestBufferedDeliveryIsExtendedBeforeItRuns(t *testing.T) {
	t.Parallel()
	be := &extendLog{Backend: newMemory(t), extends: map[string][]time.Time{}}
	var (
		mu      sync.Mutex
		started = map[string][]time.Time{}
	)
	cfg := fast
	cfg.Concurrency, cfg.BatchSize, cfg.Lease = 1, 2, slowLease
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
			mu.Lock()
			started[string(tk.Payload)] = append(started[string(tk.Payload)], time.Now())
			mu.Unlock()
			if string(tk.Payload) == "A" {
				time.Sleep(5 * slowLease / 8) // B waits in the buffer
			}
			return nil
		})})})
	require.NoError(t, err)
	// Both are leased in one batch: B's lease runs while A's handler does.
	require.NoError(t, be.Enqueue(context.Background(),
		&task.Task{Kind: "k", Queue: "default", Payload: []byte("A")},
		&task.Task{Kind: "k", Queue: "default", Payload: []byte("B")}))
	require.NoError(t, p.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, p.Stop(context.Background())) })
	require.Eventually(t, func() bool { return p.Stats().Processed == 2 }, slowLease+10*time.Second, time.Millisecond)

	st := p.Stats()
	require.Zero(t, st.Expired, "B was taken before its lease ended")
	require.Empty(t, st.LastError)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, started["A"], 1)
	require.Len(t, started["B"], 1)
	ext, ok := be.first("B")
	require.True(t, ok, "B's lease was never extended")
	require.True(t, ext.Before(started["B"][0]), "B's lease was extended only after its handler started")
}

// mustRouter returns a router of rs.
func mustRouter(t *testing.T, rs ...task.Route) *worker.Router {
	t.Helper()
	r, err := worker.NewRouter(rs)
	require.NoError(t, err)
	return r
}

// slowRelease is a memory backend whose Release does not answer (a
// network partition, say) until its context ends; it remembers what it
// did not release so the test can release it for real afterwards.
type slowRelease struct {
	*memory.Backend
	mu      sync.Mutex
	pending []*queue.Delivery
}

func (b *slowRelease) Release(ctx context.Context, d *queue.Delivery) error {
	<-ctx.Done()
	b.mu.Lock()
	b.pending = append(b.pending, d)
	b.mu.Unlock()
	return ctx.Err()
}

// releaseAll releases for real what Release did not.
func (b *slowRelease) releaseAll(t *testing.T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, d := range b.pending {
		require.NoError(t, b.Backend.Release(context.Background(), d))
	}
	b.pending = nil
}

// TestStopHonoursItsContextWithASlowBackend: with a backend that does not
// answer, Stop(ctx) returns soon after ctx ends, with an error, instead of
// giving back one delivery after another, each bounded only by the lease
// (here 10s), and then reporting success.
func TestStopHonoursItsContextWithASlowBackend(t *testing.T) {
	t.Parallel()
	be := &slowRelease{Backend: newMemory(t)}
	cfg := fast
	cfg.Concurrency, cfg.BatchSize, cfg.Lease = 1, 4, 10*time.Second
	started := make(chan struct{}, 10)
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})})})
	require.NoError(t, err)
	for range 5 {
		require.NoError(t, be.Enqueue(context.Background(), &task.Task{Kind: "k", Queue: "default"}))
	}
	require.NoError(t, p.Start(context.Background()))
	within(t, started, "the first handler")
	require.Eventually(t, func() bool {
		st, err := be.Stats(context.Background(), "default")
		return err == nil && st.InFlight == 4
	}, 10*time.Second, time.Millisecond, "one running, three in the hand-over buffer")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err = p.Stop(ctx)
	took := time.Since(begin)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, took, cfg.Lease/2, "Stop overran its ctx: %v", err)
	t.Logf("Stop returned after %s: %v", took, err)
	require.NoError(t, p.Stop(context.Background()), "everything ends once ctx ended")
	be.releaseAll(t)
}

// TestStopNamesWhatStillRuns: when ctx ends before the pool stopped, Stop
// returns an error naming what still runs: a handler that ignores its
// cancellation (whose delivery Stop gives back itself), a worker still
// giving its delivery back, and the give-backs in progress. Stop used to
// return nil while a worker was still inside a give-back, and to wait for
// its own give-back of an abandoned delivery without bound.
func TestStopNamesWhatStillRuns(t *testing.T) {
	t.Parallel()
	// Release ignores its context and waits until the gate opens.
	gate := make(chan struct{})
	be := queuetest.NewFaulty(newMemory(t))
	be.Inject(queuetest.OpRelease, queuetest.Fault{Gate: gate})
	stuck := make(chan struct{})
	started := make(chan struct{}, 2)
	cfg := fast
	cfg.Concurrency, cfg.BatchSize, cfg.DrainTimeout = 2, 2, 50*time.Millisecond
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(ctx context.Context, tk *task.Task) error {
			started <- struct{}{}
			if tk.ID == "deaf" {
				<-stuck // ignores ctx
				return nil
			}
			<-ctx.Done()
			return ctx.Err()
		})})})
	require.NoError(t, err)
	require.NoError(t, be.Enqueue(context.Background(),
		&task.Task{ID: "deaf", Kind: "k", Queue: "default"}, &task.Task{ID: "polite", Kind: "k", Queue: "default"}))
	require.NoError(t, p.Start(context.Background()))
	within(t, started, "the first handler")
	within(t, started, "the second handler")

	// Long enough for the polite handler to return and start its give-back.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- p.Stop(ctx) }()
	err = within(t, stopped, "Stop")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "still running: ")
	require.ErrorContains(t, err, "1 handlers that ignore cancellation (tasks deaf; Stop gives their deliveries back)")
	require.ErrorContains(t, err, "1 workers settling their deliveries")
	require.ErrorContains(t, err, "1 give-backs to the backend") // the abandoned delivery

	close(gate)
	close(stuck)
	require.NoError(t, p.Stop(context.Background()), "everything ends once the backend answers")
	qs, err := be.Stats(context.Background(), "default")
	require.NoError(t, err)
	require.Equal(t, int64(2), qs.Ready, "both deliveries went back")
	require.Equal(t, int64(2), p.Stats().Returned)
}

// TestExtendRacingAnAckIsNotAWarning: when the housekeeper extends the
// lease of a delivery that is acked meanwhile, the failed extension
// (lease lost) is no cause for a warning.
func TestExtendRacingAnAckIsNotAWarning(t *testing.T) {
	t.Parallel()
	// The first Extend, once called, waits until the gate opens.
	entered, gate := make(chan struct{}), make(chan struct{})
	be := queuetest.NewFaulty(newMemory(t))
	be.Inject(queuetest.OpExtend, queuetest.Fault{Entered: func(*task.Task) { close(entered) }, Gate: gate, Times: 1})
	core, logs := observer.New(zapcore.WarnLevel)
	cfg := fast
	cfg.Lease = slowLease
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be, Logger: zap.New(core),
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			select {
			case <-entered: // the housekeeper is extending this lease
				return nil
			case <-time.After(slowLease + 10*time.Second):
				return errors.New("the lease was never extended")
			}
		})})})
	require.NoError(t, err)
	require.NoError(t, be.Enqueue(context.Background(), &task.Task{Kind: "k", Queue: "default"}))
	require.NoError(t, p.Start(context.Background()))
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 1 }, slowLease+10*time.Second, time.Millisecond)
	close(gate) // the extension now finds the delivery acked
	require.NoError(t, p.Stop(context.Background()))
	require.Empty(t, p.Stats().LastError)
	require.Zero(t, logs.Len(), "warnings: %v", logs.All())
}

// renewStuck is a memory backend for a delivery stuck in its pre-run
// lease renewal: it leases for as long as asked but reports each lease as
// a quarter of that (as if the delivery had waited in the hand-over
// buffer), so a worker renews it before running it; Extend then waits,
// ignoring its context, until the test opens the gate, and fails if its
// context ended meanwhile. Release honours its context, as JetStream's
// does: a give-back with an ended context does not happen.
type renewStuck struct {
	*memory.Backend
	entered chan struct{} // closed when Extend is first called
	gate    chan struct{}
	once    sync.Once
}

func (b *renewStuck) Lease(ctx context.Context, name string, n int, leaseFor time.Duration) ([]*queue.Delivery, error) {
	ds, err := b.Backend.Lease(ctx, name, n, leaseFor)
	for _, d := range ds {
		d.LeaseUntil = time.Now().Add(leaseFor / 4)
	}
	return ds, err
}

func (b *renewStuck) Extend(ctx context.Context, d *queue.Delivery, leaseFor time.Duration) error {
	b.once.Do(func() { close(b.entered) })
	<-b.gate
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.Backend.Extend(ctx, d, leaseFor)
}

func (b *renewStuck) Release(ctx context.Context, d *queue.Delivery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.Backend.Release(ctx, d)
}

// TestStopWaitsForALeaseRenewal: Stop names a worker still renewing a
// delivery's lease before running it, and gives that delivery back once
// the renewal returns. Stop used to return nil while the worker was inside
// the backend's Extend (uncounted, bounded only by half the lease), and
// the worker then gave the delivery back with Stop's ended context: with a
// backend that honours it, the delivery stayed leased until its lease ran
// out and came back as a new attempt.
func TestStopWaitsForALeaseRenewal(t *testing.T) {
	t.Parallel()
	be := &renewStuck{Backend: newMemory(t), entered: make(chan struct{}), gate: make(chan struct{})}
	cfg := fast
	// A long lease: the delivery must go back by Release, long before its
	// lease could run out, however slow the machine.
	cfg.Concurrency, cfg.BatchSize, cfg.Lease = 1, 1, time.Minute
	p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
		Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			return errors.New("the handler must not run: the pool stopped during the renewal")
		})})})
	require.NoError(t, err)
	require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: "renewed", Kind: "k", Queue: "default"}))
	require.NoError(t, p.Start(context.Background()))
	within(t, be.entered, "the renewal of the delivery's lease")

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err = p.Stop(ctx)
	took := time.Since(begin)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "still running: 1 workers renewing a lease")
	require.Less(t, took, 10*time.Second, "Stop overran its ctx: %v", err)

	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	require.ErrorIs(t, p.Stop(ctx2), context.DeadlineExceeded, "the renewal still runs")

	close(be.gate)
	require.NoError(t, p.Stop(context.Background()), "everything ends once Extend returns")

	st := p.Stats()
	require.Equal(t, int64(1), st.Returned)
	require.Zero(t, st.Expired)
	require.Zero(t, st.Processed, "the handler never ran")
	qs, err := be.Stats(context.Background(), "default")
	require.NoError(t, err)
	require.Equal(t, int64(1), qs.Ready, "the delivery went back")
	require.Zero(t, qs.InFlight)
	ds, err := be.Backend.Lease(context.Background(), "default", 1, time.Minute)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, "renewed", ds[0].Task.ID)
	require.Equal(t, 1, ds[0].Task.Attempt, "given back uncounted, not redelivered after its lease ran out")
	require.NoError(t, be.Backend.Ack(context.Background(), ds[0]))
}

// TestFailedReleaseIsNotAReturn: give-backs the backend refuses (the
// hand-over buffer and a cancelled handler's delivery at Stop) are
// counted as failed releases, not as returned; the deliveries come back
// when their leases end. They used to be counted as returned. Give-backs
// that panic are the same failed releases; they used to end the
// goroutine giving them back (Stop's: the process).
func TestFailedReleaseIsNotAReturn(t *testing.T) {
	t.Parallel()
	for name, refuse := range refusals {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			mem := newMemory(t)
			be := queuetest.NewFaulty(mem)
			be.Inject(queuetest.OpRelease, refuse("connection reset", 0))
			cfg := fast
			cfg.Concurrency, cfg.BatchSize, cfg.Lease = 1, 3, time.Second
			started := make(chan struct{}, 10)
			p, err := worker.NewPool(worker.PoolParams{Queue: "default", Config: cfg, Backend: be,
				Router: mustRouter(t, task.Route{Kind: "k", Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
					started <- struct{}{}
					<-ctx.Done()
					return ctx.Err()
				})})})
			require.NoError(t, err)
			for range 4 {
				require.NoError(t, be.Enqueue(context.Background(), &task.Task{Kind: "k", Queue: "default"}))
			}
			require.NoError(t, p.Start(context.Background()))
			within(t, started, "the first handler")
			require.Eventually(t, func() bool {
				st, err := be.Stats(context.Background(), "default")
				return err == nil && st.InFlight == 4
			}, 10*time.Second, time.Millisecond, "one running, three in the hand-over buffer")
			require.NoError(t, p.Stop(context.Background()))

			st := p.Stats()
			require.Equal(t, worker.SettleFailures{Release: 4}, st.SettleFailed)
			require.Zero(t, st.Returned)
			require.Contains(t, st.LastError, "connection reset")
			require.Equal(t, 4, be.Calls(queuetest.OpRelease))
			// Not released: they come back once their leases end, as new attempts.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			seen := 0
			for seen < 4 {
				ds, err := mem.Lease(ctx, "default", 4, time.Minute)
				require.NoError(t, err)
				for _, d := range ds {
					require.Equal(t, 2, d.Task.Attempt)
					require.NoError(t, mem.Ack(context.Background(), d))
				}
				seen += len(ds)
			}
		})
	}
}
