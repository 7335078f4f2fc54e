package worker_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fast is a pool config for tests: short back-off without jitter.
var fast = worker.PoolConfig{
	Concurrency:  4,
	Backoff:      worker.Backoff{Initial: 20 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: -1},
	DrainTimeout: 100 * time.Millisecond,
}

// newMemory returns a memory backend closed when the test ends.
func newMemory(t *testing.T) *memory.Backend {
	t.Helper()
	be := memory.New(memory.Options{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, be.Close(ctx))
	})
	return be
}

// slowLease and slowHandler are for the lease-extension cases: the pool
// extends a lease at half-life, checking every quarter lease, so the
// margin against scheduling delays is a quarter lease: 750ms, enough for
// a slow CI machine running the tests in parallel under -race (a 1s
// lease, a 250ms margin, was not). A slow handler outlives its first
// lease by half: its lease must have been extended at least once.
const (
	slowLease   = 3 * time.Second
	slowHandler = 3 * slowLease / 2
)

// within fails t unless ch delivers (or is closed) within 10s.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

type bundle struct {
	be  *memory.Backend
	reg *lifecycle.Registry
	rt  *worker.Runtime
}

// setup starts an fx app with worker.Module on a memory backend, cfg as
// the "default" pool's settings and routes; the app stops when the test
// ends.
func setup(t *testing.T, cfg worker.PoolConfig, routes ...task.Route) *bundle {
	t.Helper()
	b := &bundle{be: newMemory(t), reg: lifecycle.NewRegistry(nil, nil)}
	opts := []fx.Option{
		fx.NopLogger,
		fx.Supply(b.reg, worker.Config{"default": cfg}),
		fx.Provide(func() queue.Backend { return b.be }),
		worker.Module,
		fx.Populate(&b.rt),
	}
	for _, r := range routes {
		opts = append(opts, worker.SupplyRoute(r))
	}
	app := fxtest.New(t, opts...)
	app.RequireStart()
	t.Cleanup(app.RequireStop)
	return b
}

func (b *bundle) enqueue(t *testing.T, tasks ...*task.Task) {
	t.Helper()
	require.NoError(t, b.rt.Producer().Enqueue(context.Background(), tasks...))
}

func (b *bundle) pool(t *testing.T, q string) *worker.Pool {
	t.Helper()
	p, ok := b.rt.Pool(q)
	require.True(t, ok, "pool %q", q)
	return p
}

func (b *bundle) waitDead(t *testing.T, q string, n int) []queue.DeadLetter {
	t.Helper()
	var dl []queue.DeadLetter
	require.Eventually(t, func() bool {
		dl, _ = b.be.ListDead(context.Background(), q, 0)
		return len(dl) >= n
	}, 5*time.Second, 2*time.Millisecond)
	return dl
}

// recorder remembers the attempts and times a handler saw.
type recorder struct {
	mu       sync.Mutex
	attempts []int
	times    []time.Time
}

func (r *recorder) record(t *task.Task) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts = append(r.attempts, t.Attempt)
	r.times = append(r.times, time.Now())
	return len(r.attempts)
}

func (r *recorder) snapshot() ([]int, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.attempts...), append([]time.Time(nil), r.times...)
}

func TestRetriesFollowPolicyThenDeadLetter(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	cfg := fast
	cfg.MaxAttempts = 3
	b := setup(t, cfg, task.Route{Kind: "flaky", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
		return fmt.Errorf("attempt %d failed", rec.record(tk))
	})})
	b.enqueue(t, &task.Task{Kind: "flaky"})
	dl := b.waitDead(t, "default", 1)
	require.Equal(t, "attempt 3 failed", dl[0].Reason, "the last error is the reason")

	attempts, times := rec.snapshot()
	require.Equal(t, []int{1, 2, 3}, attempts)
	require.GreaterOrEqual(t, times[1].Sub(times[0]), 20*time.Millisecond, "initial back-off")
	require.GreaterOrEqual(t, times[2].Sub(times[1]), 40*time.Millisecond, "doubled back-off")
	require.Less(t, times[2].Sub(times[1]), time.Second)

	st := b.pool(t, "default").Stats()
	require.Equal(t, int64(3), st.Failed)
	require.Equal(t, int64(2), st.Retried)
	require.Equal(t, int64(1), st.Dead)
	require.Equal(t, int64(3), st.Processed)
	require.Equal(t, "attempt 3 failed", st.LastError)
}

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	b := worker.Backoff{Initial: time.Second, Max: 5 * time.Second, Multiplier: 2, Jitter: 0.2}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 10: 5 * time.Second} {
		for range 20 {
			d := b.Delay(n)
			require.GreaterOrEqual(t, d, time.Duration(float64(want)*0.8), "attempt %d", n)
			require.LessOrEqual(t, d, time.Duration(float64(want)*1.2), "attempt %d", n)
		}
	}
	b.Jitter = -1
	require.Equal(t, 4*time.Second, b.Delay(3))
}

func TestPermanentGoesStraightToDeadLetter(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	b := setup(t, fast, task.Route{Kind: "bad", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
		calls.Add(1)
		return task.Permanentf("invoice %d has no customer", 42)
	})})
	b.enqueue(t, &task.Task{Kind: "bad"})
	dl := b.waitDead(t, "default", 1)
	require.Equal(t, "invoice 42 has no customer", dl[0].Reason)
	require.Equal(t, 1, dl[0].Task.Attempt)
	require.Equal(t, int64(1), calls.Load())
	require.Zero(t, b.pool(t, "default").Stats().Retried)
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	done := make(chan struct{})
	cfg := fast
	cfg.Backoff.Initial = time.Millisecond
	b := setup(t, cfg, task.Route{Kind: "later", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
		if rec.record(tk) == 1 {
			return task.RetryAfter(150*time.Millisecond, errors.New("rate limited"))
		}
		close(done)
		return nil
	})})
	b.enqueue(t, &task.Task{Kind: "later"})
	within(t, done, "the retry")
	_, times := rec.snapshot()
	require.GreaterOrEqual(t, times[1].Sub(times[0]), 150*time.Millisecond)
}

func TestPanicRecoveredAndCounted(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := setup(t, fast, task.Route{Kind: "boom", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
		if rec.record(tk) == 1 {
			var m map[string]int
			m["x"]++ // nil map write
		}
		return nil
	})})
	b.enqueue(t, &task.Task{Kind: "boom"})
	p := b.pool(t, "default")
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 1 }, 5*time.Second, time.Millisecond)
	st := p.Stats()
	require.Equal(t, int64(1), st.Panics)
	require.Equal(t, int64(1), st.Failed)
	require.Contains(t, st.LastError, "handler panic: assignment to entry in nil map")
	require.Zero(t, st.WorkerRestarts, "a handler panic does not kill the worker")
}

func TestTimeoutCancelsHandlerContext(t *testing.T) {
	t.Parallel()
	seen := make(chan error, 1)
	b := setup(t, fast, task.Route{Kind: "slow", Timeout: 30 * time.Millisecond, MaxAttempts: 1,
		Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
			<-ctx.Done()
			seen <- ctx.Err()
			return ctx.Err()
		})})
	b.enqueue(t, &task.Task{Kind: "slow"})
	require.ErrorIs(t, <-seen, context.DeadlineExceeded)
	dl := b.waitDead(t, "default", 1)
	require.Contains(t, dl[0].Reason, "task timed out after 30ms")
}

func TestRouteMaxAttemptsOverride(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	cfg := fast
	cfg.MaxAttempts = 5
	cfg.Backoff.Initial = time.Millisecond
	b := setup(t, cfg, task.Route{Kind: "twice", MaxAttempts: 2, Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
		rec.record(tk)
		return errors.New("nope")
	})})
	b.enqueue(t, &task.Task{Kind: "twice"})
	b.waitDead(t, "default", 1)
	attempts, _ := rec.snapshot()
	require.Equal(t, []int{1, 2}, attempts)
}

func TestUnroutedKindDeadLettered(t *testing.T) {
	t.Parallel()
	b := setup(t, fast, task.Route{Kind: "known", Queue: "orders", Handler: task.HandlerFunc(func(context.Context, *task.Task) error { return nil })})
	tk := &task.Task{Kind: "mystery"}
	b.enqueue(t, tk)
	require.Equal(t, task.DefaultQueue, tk.Queue, "an unknown kind goes to the default queue")
	dl := b.waitDead(t, task.DefaultQueue, 1)
	require.Equal(t, "no handler for kind mystery", dl[0].Reason)
	require.Equal(t, tk.ID, dl[0].Task.ID)

	known := &task.Task{Kind: "known"}
	b.enqueue(t, known)
	require.Equal(t, "orders", known.Queue, "the route decides the queue")
}

func TestPauseResumeResize(t *testing.T) {
	t.Parallel()
	var (
		running, peak atomic.Int64
		done          atomic.Int64
	)
	release := make(chan struct{})
	cfg := fast
	cfg.Concurrency = 1
	b := setup(t, cfg, task.Route{Kind: "block", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		done.Add(1)
		return nil
	})})
	p := b.pool(t, "default")

	p.Pause()
	require.True(t, p.Stats().Paused)
	require.Equal(t, lifecycle.Paused, p.State(), "a paused pool's component says paused")
	for range 6 {
		b.enqueue(t, &task.Task{Kind: "block"})
	}
	time.Sleep(50 * time.Millisecond)
	require.Zero(t, running.Load(), "a paused pool leases nothing")

	p.Resume()
	require.Equal(t, lifecycle.Running, p.State())
	require.Eventually(t, func() bool { return running.Load() == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, p.Resize(4))
	require.Eventually(t, func() bool { return running.Load() == 4 }, 5*time.Second, time.Millisecond)
	require.Equal(t, 4, p.Stats().Workers)
	require.Equal(t, int64(4), p.Stats().InFlight)

	require.NoError(t, p.Resize(1))
	close(release)
	require.Eventually(t, func() bool { return done.Load() == 6 }, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return p.Stats().Workers == 1 }, 5*time.Second, time.Millisecond)
	require.Equal(t, int64(4), peak.Load())
	// The handler counted its run before returning: the ack follows.
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 6 }, 5*time.Second, time.Millisecond,
		"shrinking lost nothing in flight")
	require.ErrorIs(t, p.Resize(0), worker.ErrInvalidSize)
}

func TestDrainReturnsUnfinishedTasks(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	started := make(chan struct{}, 10)
	var cancelled atomic.Int64
	slow := task.Route{Kind: "slow", Handler: task.HandlerFunc(func(ctx context.Context, _ *task.Task) error {
		started <- struct{}{}
		<-ctx.Done()
		cancelled.Add(1)
		return ctx.Err()
	})}
	cfg := fast
	cfg.DrainTimeout = 50 * time.Millisecond
	rt, err := worker.New(worker.Params{Routes: []task.Route{slow}, Backend: be, Config: worker.Config{"default": cfg}})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	for range 3 {
		require.NoError(t, rt.Producer().Enqueue(context.Background(), &task.Task{Kind: "slow"}))
	}
	for range 3 {
		<-started
	}
	p, _ := rt.Pool("default")
	begin := time.Now()
	require.NoError(t, rt.Stop(context.Background()))
	require.GreaterOrEqual(t, time.Since(begin), 50*time.Millisecond, "in-flight tasks get the drain timeout")
	require.Equal(t, int64(3), cancelled.Load())
	st := p.Stats()
	require.Equal(t, int64(3), st.Returned)
	require.Zero(t, st.Succeeded)
	require.Zero(t, st.Failed, "a returned task is not a failure")
	require.NoError(t, rt.Stop(context.Background()), "stop is idempotent")

	// A new runtime on the same backend gets the tasks, first attempt still.
	var attempts []int
	var mu sync.Mutex
	fin := make(chan struct{}, 3)
	quick := task.Route{Kind: "slow", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
		mu.Lock()
		attempts = append(attempts, tk.Attempt)
		mu.Unlock()
		fin <- struct{}{}
		return nil
	})}
	rt2, err := worker.New(worker.Params{Routes: []task.Route{quick}, Backend: be, Config: worker.Config{"default": cfg}})
	require.NoError(t, err)
	require.NoError(t, rt2.Start(context.Background()))
	for range 3 {
		<-fin
	}
	require.NoError(t, rt2.Stop(context.Background()))
	require.Equal(t, []int{1, 1, 1}, attempts)
}

func TestStopBeforeStart(t *testing.T) {
	t.Parallel()
	rt, err := worker.New(worker.Params{Backend: newMemory(t)})
	require.NoError(t, err)
	require.NoError(t, rt.Stop(context.Background()))
	p, _ := rt.Pool("default")
	require.ErrorIs(t, p.Start(context.Background()), worker.ErrPoolStopped)
}

func TestStalledCheck(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	cfg := fast
	cfg.Concurrency = 1
	cfg.StallAfter = 80 * time.Millisecond
	b := setup(t, cfg, task.Route{Kind: "stuck", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
		<-release
		return nil
	})})
	p := b.pool(t, "default")
	comp, ok := b.reg.Get("pool/default")
	require.True(t, ok)
	require.NoError(t, p.Check(context.Background()))
	b.enqueue(t, &task.Task{Kind: "stuck"}, &task.Task{Kind: "stuck"})
	require.Eventually(t, func() bool { return errors.Is(p.Check(context.Background()), worker.ErrStalled) }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, lifecycle.Degraded, comp.State())
	require.Contains(t, comp.Status().LastError, "1 tasks wait")
	require.Contains(t, comp.Status().LastError, "but nothing finished")
	close(release)
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 2 }, 5*time.Second, time.Millisecond)
	require.NoError(t, p.Check(context.Background()))
	require.Equal(t, lifecycle.Running, comp.State())
}

// TestLongHandlerKeepsItsLease: a handler that runs longer than its lease
// keeps it (the pool extends it), so its ack counts and the task is not
// delivered again. Had the lease run out, the backend would have put the
// task back (run again by another worker) and the ack would have failed
// (LastError): both are checked once the handler finished, without
// waiting for something not to happen.
func TestLongHandlerKeepsItsLease(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	cfg := fast
	cfg.Lease = slowLease
	b := setup(t, cfg, task.Route{Kind: "long", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
		calls.Add(1)
		time.Sleep(slowHandler)
		return nil
	})})
	b.enqueue(t, &task.Task{Kind: "long"})
	p := b.pool(t, "default")
	require.Eventually(t, func() bool { return p.Stats().Processed == 1 }, slowHandler+10*time.Second, time.Millisecond)
	require.Empty(t, p.Stats().LastError, "the ack found its lease")
	require.Equal(t, int64(1), calls.Load(), "the lease was extended: no redelivery")
	qs, err := b.be.Stats(context.Background(), "default")
	require.NoError(t, err)
	require.Equal(t, queue.Stats{Queue: "default"}, qs, "acked, nothing left to deliver again")
}

// panickyObserver panics in Finished once: outside the handler's recover.
type panickyObserver struct {
	task.NopObserver
	once atomic.Bool
}

func (o *panickyObserver) Finished(context.Context, *task.Task, task.Outcome, error, string, time.Duration) {
	if o.once.CompareAndSwap(false, true) {
		panic("observer bug")
	}
}

func TestWorkerCrashIsReplaced(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	var handled atomic.Int64
	rt, err := worker.New(worker.Params{
		Routes:   []task.Route{{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error { handled.Add(1); return nil })}},
		Backend:  be,
		Config:   worker.Config{"default": worker.PoolConfig{Concurrency: 2}},
		Observer: &panickyObserver{},
	})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	defer func() { require.NoError(t, rt.Stop(context.Background())) }()
	for range 5 {
		require.NoError(t, rt.Producer().Enqueue(context.Background(), &task.Task{Kind: "k"}))
	}
	p, _ := rt.Pool("default")
	require.Eventually(t, func() bool { return handled.Load() == 5 }, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return p.Stats().WorkerRestarts == 1 }, 5*time.Second, time.Millisecond)
	require.Equal(t, 2, p.Stats().Workers)
	st, err := be.Stats(context.Background(), "default")
	require.NoError(t, err)
	require.Zero(t, st.InFlight+st.Ready, "the crashed worker's task was already acked")
}

func TestConfigValidateAndResolve(t *testing.T) {
	t.Parallel()
	err := worker.PoolConfig{Concurrency: -3}.Validate()
	require.EqualError(t, err, "concurrency: must be 1 to 10000 (got -3)")

	// Upper bounds: a huge value used to panic in makechan (concurrency)
	// or exhaust memory (batch_size) instead of being reported.
	err = worker.PoolConfig{Concurrency: math.MaxInt64, BatchSize: 2_000_000_000}.Validate()
	require.EqualError(t, err, "concurrency: must be 1 to 10000 (got 9223372036854775807)\nbatch_size: must be 1 to 10000 (got 2000000000)")
	_, err = worker.NewPool(worker.PoolParams{Queue: "q", Backend: memory.New(memory.Options{}), Router: mustRouter(t),
		Config: worker.PoolConfig{Concurrency: math.MaxInt64}})
	require.ErrorContains(t, err, "concurrency: must be 1 to 10000")

	cfg := worker.Config{
		"default": {Concurrency: 2, MaxAttempts: 7},
		"orders":  {Concurrency: 16, Backoff: worker.Backoff{Multiplier: 0.5}},
	}
	err = cfg.Validate()
	require.EqualError(t, err, "orders.backoff.multiplier: must be at least 1 (got 0.5)")

	cfg["orders"] = worker.PoolConfig{Concurrency: 16}
	require.NoError(t, cfg.Validate())
	o := cfg.For("orders")
	require.Equal(t, 16, o.Concurrency)
	require.Equal(t, 7, o.MaxAttempts, "from the default entry")
	require.Equal(t, worker.DefaultTaskTimeout, o.TaskTimeout, "built-in default")
	require.Equal(t, worker.DefaultMinBatchSize, o.BatchSize, "at least the minimum batch")
	require.Equal(t, 64, worker.PoolConfig{Concurrency: 64}.WithDefaults().BatchSize, "a batch per worker")
	other := cfg.For("mail")
	require.Equal(t, 2, other.Concurrency)
	require.Equal(t, worker.DefaultLease, worker.Config(nil).For("x").Lease)
	require.Equal(t, worker.DefaultConcurrency, worker.Config(nil).For("x").Concurrency)
}

func TestDuplicateRoutesNamed(t *testing.T) {
	t.Parallel()
	h := task.HandlerFunc(func(context.Context, *task.Task) error { return nil })
	_, err := worker.NewRouter([]task.Route{{Kind: "k", Handler: h, Name: "billing"}, {Kind: "k", Handler: h, Name: "shipping"}})
	require.ErrorIs(t, err, worker.ErrDuplicateRoute)
	require.ErrorContains(t, err, `kind "k" is routed by both "billing" and "shipping"`)
}

// countingObserver counts calls.
type countingObserver struct {
	task.NopObserver
	enqueuing, enqueued, starting, finished atomic.Int64
}

func (o *countingObserver) Enqueuing(ctx context.Context, ts []*task.Task) context.Context {
	o.enqueuing.Add(int64(len(ts)))
	for _, t := range ts {
		t.SetHeader("traceparent", "00-x")
	}
	return ctx
}
func (o *countingObserver) Enqueued(_ context.Context, ts []*task.Task, err error) {
	if err == nil {
		o.enqueued.Add(int64(len(ts)))
	}
}
func (o *countingObserver) Starting(ctx context.Context, _ *task.Task) context.Context {
	o.starting.Add(1)
	return ctx
}
func (o *countingObserver) Finished(context.Context, *task.Task, task.Outcome, error, string, time.Duration) {
	o.finished.Add(1)
}

func TestProducerAndObserver(t *testing.T) {
	t.Parallel()
	obs := &countingObserver{}
	be := newMemory(t)
	got := make(chan string, 2)
	rt, err := worker.New(worker.Params{
		Routes:   []task.Route{{Kind: "k", Queue: "q", Handler: task.HandlerFunc(func(_ context.Context, t *task.Task) error { got <- t.Header("traceparent"); return nil })}},
		Backend:  be,
		Observer: obs,
	})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	defer func() { require.NoError(t, rt.Stop(context.Background())) }()
	a, c := &task.Task{Kind: "k"}, &task.Task{Kind: "k", Queue: "explicit"}
	require.NoError(t, rt.Producer().Enqueue(context.Background(), a, c))
	require.NotEmpty(t, a.ID)
	require.Equal(t, a.ID, a.Key)
	require.Equal(t, "q", a.Queue)
	require.Equal(t, "explicit", c.Queue, "an explicit queue is kept")
	require.Equal(t, "00-x", <-got)
	p, _ := rt.Pool("q")
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 1 }, 5*time.Second, time.Millisecond)
	require.Equal(t, int64(2), obs.enqueuing.Load())
	require.Equal(t, int64(2), obs.enqueued.Load())
	require.Equal(t, int64(1), obs.starting.Load())
	require.Equal(t, int64(1), obs.finished.Load())

	require.ErrorIs(t, rt.Producer().Enqueue(context.Background(), &task.Task{}), queue.ErrInvalidTask)
	require.ErrorIs(t, worker.NewProducer(be, nil, nil).Enqueue(context.Background(), &task.Task{Kind: "k"}), worker.ErrNotReady)
}

// TestBufferedDeliveryWithExpiredLeaseIsSkipped: a delivery whose lease
// ended while it waited in the hand-over buffer is not run (another
// consumer may have it); the backend delivers it again.
func TestBufferedDeliveryWithExpiredLeaseIsSkipped(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		attempts = map[string][]int{}
	)
	cfg := fast
	cfg.Concurrency, cfg.BatchSize, cfg.Lease = 1, 1, slowLease
	b := setup(t, cfg, task.Route{Kind: "k", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
		mu.Lock()
		attempts[string(tk.Payload)] = append(attempts[string(tk.Payload)], tk.Attempt)
		mu.Unlock()
		if string(tk.Payload) == "long" {
			time.Sleep(slowHandler) // its own lease is extended
		}
		return nil
	})})
	b.enqueue(t, &task.Task{Kind: "k", Payload: []byte("long")}, &task.Task{Kind: "k", Payload: []byte("next")})
	p := b.pool(t, "default")
	require.Eventually(t, func() bool { return p.Stats().Succeeded == 2 }, slowHandler+10*time.Second, time.Millisecond)
	st := p.Stats()
	require.Equal(t, int64(1), st.Expired)
	require.Empty(t, st.LastError, "both acks found their leases")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []int{1}, attempts["long"])
	require.Equal(t, []int{2}, attempts["next"], "run once, on its second delivery")
}

// TestDrainKeepsLeasesAlive: a handler that finishes during the drain
// still holds its lease (the pool keeps extending it), so its ack counts
// and the task is not delivered again.
func TestDrainKeepsLeasesAlive(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	started := make(chan struct{})
	cfg := fast
	cfg.Lease, cfg.DrainTimeout = slowLease, 4*slowHandler
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"default": cfg},
		Routes: []task.Route{{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			close(started)
			time.Sleep(slowHandler) // ignores its context: finishes within the drain
			return nil
		})}}})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	require.NoError(t, rt.Producer().Enqueue(context.Background(), &task.Task{Kind: "k"}))
	within(t, started, "the handler")
	require.NoError(t, rt.Stop(context.Background()))
	p, _ := rt.Pool("default")
	st := p.Stats()
	require.Equal(t, int64(1), st.Succeeded)
	require.Empty(t, st.LastError, "the ack found its lease")
	qs, err := be.Stats(context.Background(), "default")
	require.NoError(t, err)
	require.Equal(t, queue.Stats{Queue: "default"}, qs, "nothing left to deliver again")
}

// TestPauseReturnsBufferedDeliveries: deliveries waiting in the hand-over
// buffer go back to the queue when the pool is paused, even while every
// worker is busy with a long handler (they must not stay leased, and
// invisible to other consumers, until a worker frees up).
func TestPauseReturnsBufferedDeliveries(t *testing.T) {
	t.Parallel()
	be := newMemory(t)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	cfg := fast
	cfg.Concurrency, cfg.BatchSize = 1, 2
	rt, err := worker.New(worker.Params{Backend: be, Config: worker.Config{"default": cfg},
		Routes: []task.Route{{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
			select {
			case started <- struct{}{}:
			default:
			}
			<-release
			return nil
		})}}})
	require.NoError(t, err)
	require.NoError(t, rt.Start(context.Background()))
	defer func() { require.NoError(t, rt.Stop(context.Background())) }()
	defer close(release)
	p, _ := rt.Pool("default")
	require.NoError(t, rt.Producer().Enqueue(context.Background(),
		&task.Task{Kind: "k"}, &task.Task{Kind: "k"}, &task.Task{Kind: "k"}))
	<-started
	require.Eventually(t, func() bool {
		qs, err := be.Stats(context.Background(), "default")
		return err == nil && qs.InFlight == 3
	}, 5*time.Second, time.Millisecond, "one running, two in the hand-over buffer")

	p.Pause()
	require.Eventually(t, func() bool {
		qs, err := be.Stats(context.Background(), "default")
		return err == nil && qs.InFlight == 1 && qs.Ready == 2
	}, 5*time.Second, time.Millisecond, "the buffered deliveries went back while the handler still runs")
	require.Equal(t, int64(2), p.Stats().Returned)
}
