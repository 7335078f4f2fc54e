package source_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// collector is a task.Enqueuer that keeps what it is given.
type collector struct {
	mu    sync.Mutex
	tasks []*task.Task
}

func (c *collector) Enqueue(_ context.Context, tasks ...*task.Task) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tasks = append(c.tasks, tasks...)
	return nil
}

func (c *collector) all() []*task.Task {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*task.Task(nil), c.tasks...)
}

// funcSource is a Source made of a function.
type funcSource struct {
	name string
	run  func(ctx context.Context, emit source.Emitter) error
}

func (f *funcSource) Name() string                                       { return f.name }
func (f *funcSource) Run(ctx context.Context, emit source.Emitter) error { return f.run(ctx, emit) }

// completingSource also records completions.
type completingSource struct {
	funcSource
	mu   sync.Mutex
	seen map[string]task.Outcome
}

func (c *completingSource) Complete(_ context.Context, t *task.Task, o task.Outcome, _ string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]task.Outcome{}
	}
	c.seen[t.ID] = o
	return nil
}

func stopSupervisor(t *testing.T, s *source.Supervisor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Stop(ctx))
}

func componentState(t *testing.T, reg *lifecycle.Registry, name string) lifecycle.Status {
	t.Helper()
	c, ok := reg.Get("source/" + name)
	require.True(t, ok)
	return c.Status()
}

func TestSupervisorRestartBackoff(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		starts []time.Time
	)
	src := &funcSource{name: "flaky", run: func(ctx context.Context, _ source.Emitter) error {
		mu.Lock()
		starts = append(starts, time.Now())
		n := len(starts)
		mu.Unlock()
		if n <= 3 {
			return errors.New("boom")
		}
		<-ctx.Done()
		return ctx.Err()
	}}
	reg := lifecycle.NewRegistry(nil, nil)
	cfg := source.Config{RestartInitial: 20 * time.Millisecond, RestartMax: 60 * time.Millisecond, RestartJitter: -1, CrashLoopLimit: 10, CrashLoopWindow: time.Minute}
	s, err := source.NewSupervisor(cfg, &collector{}, reg, nil, src)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(starts) == 4
	}, 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return componentState(t, reg, "flaky").State == lifecycle.Running }, time.Second, time.Millisecond)

	mu.Lock()
	gaps := []time.Duration{starts[1].Sub(starts[0]), starts[2].Sub(starts[1]), starts[3].Sub(starts[2])}
	mu.Unlock()
	// 20ms, then doubled to 40ms, then capped at 60ms.
	require.GreaterOrEqual(t, gaps[0], 20*time.Millisecond)
	require.GreaterOrEqual(t, gaps[1], 40*time.Millisecond)
	require.GreaterOrEqual(t, gaps[2], 60*time.Millisecond)
	require.Less(t, gaps[2], 2*time.Second)

	st := s.Stats()[0]
	require.Equal(t, int64(3), st.Errors)
	require.Equal(t, int64(3), st.Restarts)
	require.Equal(t, "boom", st.LastError)
	stopSupervisor(t, s)
	require.Equal(t, lifecycle.Stopped, componentState(t, reg, "flaky").State)
}

func TestSupervisorRecoversPanic(t *testing.T) {
	t.Parallel()
	var runs atomic.Int64
	src := &funcSource{name: "panicky", run: func(ctx context.Context, _ source.Emitter) error {
		if runs.Add(1) == 1 {
			panic("nil map")
		}
		<-ctx.Done()
		return nil
	}}
	reg := lifecycle.NewRegistry(nil, nil)
	s, err := source.NewSupervisor(source.Config{RestartInitial: time.Millisecond}, &collector{}, reg, nil, src)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	require.Eventually(t, func() bool { return runs.Load() == 2 }, 5*time.Second, time.Millisecond)
	st := s.Stats()[0]
	require.Contains(t, st.LastError, "handler panic: nil map")
	require.Equal(t, int64(1), st.Restarts)
	stopSupervisor(t, s)
}

func TestSupervisorFinishedSourceStops(t *testing.T) {
	t.Parallel()
	src := &funcSource{name: "once", run: func(ctx context.Context, emit source.Emitter) error {
		return emit.Emit(ctx, &task.Task{Kind: "k"})
	}}
	reg := lifecycle.NewRegistry(nil, nil)
	col := &collector{}
	s, err := source.NewSupervisor(source.Config{}, col, reg, nil, src)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	require.Eventually(t, func() bool { return componentState(t, reg, "once").State == lifecycle.Stopped }, 5*time.Second, time.Millisecond)
	require.Len(t, col.all(), 1)
	require.Equal(t, int64(1), s.Stats()[0].Emitted)
	require.Zero(t, s.Stats()[0].Restarts)
	stopSupervisor(t, s)
}

func TestSupervisorStopIdempotentAndBeforeStart(t *testing.T) {
	t.Parallel()
	src := &funcSource{name: "idle", run: func(ctx context.Context, _ source.Emitter) error { <-ctx.Done(); return nil }}
	reg := lifecycle.NewRegistry(nil, nil)
	s, err := source.NewSupervisor(source.Config{}, &collector{}, reg, nil, src)
	require.NoError(t, err)
	stopSupervisor(t, s)
	stopSupervisor(t, s)
	require.NoError(t, s.Start(context.Background()), "start after stop does nothing")
	require.Equal(t, lifecycle.Stopped, componentState(t, reg, "idle").State)
}

func TestSupervisorRejectsDuplicatesAndBadConfig(t *testing.T) {
	t.Parallel()
	a := &funcSource{name: "a", run: func(context.Context, source.Emitter) error { return nil }}
	_, err := source.NewSupervisor(source.Config{}, &collector{}, nil, nil, a, a)
	require.ErrorIs(t, err, source.ErrDuplicateSource)

	_, err = source.NewSupervisor(source.Config{CrashLoopLimit: -1}, &collector{}, nil, nil, a)
	require.ErrorContains(t, err, "crash_loop_limit: must not be negative (got -1)")
}

func TestEmitterStampsCompletionHeader(t *testing.T) {
	t.Parallel()
	col := &collector{}
	plain := source.NewEmitter(&funcSource{name: "plain"}, col)
	completing := source.NewEmitter(&completingSource{funcSource: funcSource{name: "mailbox"}}, col)
	ctx := context.Background()
	require.NoError(t, plain.Emit(ctx, &task.Task{ID: "1", Kind: "k"}))
	require.NoError(t, completing.Emit(ctx, &task.Task{ID: "2", Kind: "k"}, &task.Task{ID: "3", Kind: "k"}))
	got := col.all()
	require.Len(t, got, 3)
	require.Empty(t, got[0].Header(task.HeaderCompletion))
	require.Equal(t, "mailbox", got[1].Header(task.HeaderCompletion))
	require.Equal(t, "mailbox", got[2].Header(task.HeaderCompletion))
}

func TestCompletionsRouting(t *testing.T) {
	t.Parallel()
	a := &completingSource{funcSource: funcSource{name: "a"}}
	b := &completingSource{funcSource: funcSource{name: "b"}}
	plain := &funcSource{name: "plain"}
	c, err := source.NewCompletions(a, b, plain)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, c.Names())

	ctx := context.Background()
	ta := &task.Task{ID: "ta", Headers: map[string]string{task.HeaderCompletion: "a"}}
	tb := &task.Task{ID: "tb", Headers: map[string]string{task.HeaderCompletion: "b"}}
	require.NoError(t, c.Complete(ctx, ta, task.Succeeded, ""))
	require.NoError(t, c.Complete(ctx, tb, task.DeadLettered, "bad"))
	require.Equal(t, map[string]task.Outcome{"ta": task.Succeeded}, a.seen)
	require.Equal(t, map[string]task.Outcome{"tb": task.DeadLettered}, b.seen)

	require.NoError(t, c.Complete(ctx, &task.Task{ID: "none"}, task.Succeeded, ""), "no header, nothing to do")
	err = c.Complete(ctx, &task.Task{ID: "x", Headers: map[string]string{task.HeaderCompletion: "gone"}}, task.Succeeded, "")
	require.ErrorIs(t, err, source.ErrUnknownCompleter)

	require.NoError(t, c.Add("panics", completerFunc(func() error { panic("oops") })))
	err = c.Complete(ctx, &task.Task{ID: "p", Headers: map[string]string{task.HeaderCompletion: "panics"}}, task.Succeeded, "")
	var pe *task.PanicError
	require.ErrorAs(t, err, &pe)
	require.ErrorIs(t, c.Add("a", a), source.ErrDuplicateSource)

	_, err = source.NewCompletions(a, a)
	require.ErrorIs(t, err, source.ErrDuplicateSource)
}

type completerFunc func() error

func (f completerFunc) Complete(context.Context, *task.Task, task.Outcome, string) error { return f() }

func TestPollCadence(t *testing.T) {
	t.Parallel()
	const interval, jitter = 30 * time.Millisecond, 10 * time.Millisecond
	var (
		mu    sync.Mutex
		times []time.Time
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := source.Poll("ticker", interval, jitter, func(ctx context.Context, emit source.Emitter) error {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		if n == 6 {
			cancel()
		}
		return emit.Emit(ctx, &task.Task{Kind: "tick"})
	})
	col := &collector{}
	start := time.Now()
	require.NoError(t, p.Run(ctx, source.NewEmitter(p, col)))
	require.Len(t, times, 6)
	require.Less(t, times[0].Sub(start), interval-jitter, "first poll is immediate")
	for i := 1; i < len(times); i++ {
		require.GreaterOrEqual(t, times[i].Sub(times[i-1]), interval-jitter, "gap %d", i)
	}
	// Upper bound is loose: shared CI machines are slow, but not 10x.
	require.Less(t, times[5].Sub(times[0]), 5*(interval+jitter)*10)
	require.Len(t, col.all(), 6)
}

func TestPollErrorEndsRun(t *testing.T) {
	t.Parallel()
	p := source.Poll("failing", time.Millisecond, 0, func(context.Context, source.Emitter) error {
		return errors.New("server down")
	})
	err := p.Run(context.Background(), source.NewEmitter(p, &collector{}))
	require.ErrorContains(t, err, `source "failing": poll: server down`)
}

// detailed is a source with a status of its own.
type detailed struct{}

func (detailed) Name() string { return "detailed" }
func (detailed) Run(ctx context.Context, _ source.Emitter) error {
	<-ctx.Done()
	return nil
}
func (detailed) Details() any { return map[string]int{"last_uid": 42} }

func TestDetailerShowsInComponentDetails(t *testing.T) {
	t.Parallel()
	reg := lifecycle.NewRegistry(nil, nil)
	s, err := source.NewSupervisor(source.Config{}, &collector{}, reg, nil, detailed{})
	require.NoError(t, err)
	require.Equal(t, map[string]int{"last_uid": 42}, s.Stats()[0].Details)
	c, ok := reg.Get("source/detailed")
	require.True(t, ok)
	require.Equal(t, map[string]int{"last_uid": 42}, c.Status().Details.(source.Stats).Details)
}

// TestEmitterCompletesDuplicatesOfFinishedTasks: a task emitted again
// after its first copy finished (a source restarted after its process
// died between the ack and the completion, say) is dropped by the
// backend's de-duplication; the emitter tells the source the outcome at
// once, since no other completion will come. Before, the source was told
// nothing and its mail stayed in the INBOX.
func TestEmitterCompletesDuplicatesOfFinishedTasks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	be := memory.New(memory.Options{DedupWindow: time.Minute})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	src := &completingSource{funcSource: funcSource{name: "mailbox"}}
	emit := source.NewEmitter(src, be)

	require.NoError(t, emit.Emit(ctx, &task.Task{ID: "a", Kind: "k", Queue: "q"}, &task.Task{ID: "b", Kind: "k", Queue: "q"}))
	ds, err := be.Lease(ctx, "q", 2, time.Minute)
	require.NoError(t, err)
	require.Len(t, ds, 2)
	for _, d := range ds {
		if d.Task.ID == "a" {
			require.NoError(t, be.Ack(ctx, d))
		} else {
			require.NoError(t, be.DeadLetter(ctx, d, "bad"))
		}
	}
	require.Empty(t, src.seen, "the pool (absent here) tells the source of the first copies")

	require.NoError(t, emit.Emit(ctx, &task.Task{ID: "a", Kind: "k", Queue: "q"}, &task.Task{ID: "b", Kind: "k", Queue: "q"},
		&task.Task{ID: "c", Kind: "k", Queue: "q"}))
	src.mu.Lock()
	require.Equal(t, map[string]task.Outcome{"a": task.Succeeded, "b": task.DeadLettered}, src.seen)
	src.mu.Unlock()
	st, err := be.Stats(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Ready, "only the new task was enqueued")
}

// TestCompleteGoexitIsAFailedCompletion: a completer that ends its
// goroutine with runtime.Goexit (testing's FailNow, say) fails its
// completion like one that panics, and the caller's goroutine goes on. It
// used to end the caller's goroutine too (here the test's: it stopped
// with "test executed panic(nil) or runtime.Goexit").
func TestCompleteGoexitIsAFailedCompletion(t *testing.T) {
	t.Parallel()
	c := &source.Completions{}
	require.NoError(t, c.Add("exits", completerFunc(func() error { runtime.Goexit(); return nil })))
	tk := &task.Task{ID: "g", Headers: map[string]string{task.HeaderCompletion: "exits"}}
	err := c.Complete(context.Background(), tk, task.Succeeded, "")
	require.ErrorIs(t, err, task.ErrGoexit)
	require.ErrorContains(t, err, `source "exits": complete task g`)
	err = c.CompleteWithin(context.Background(), nil, time.Second, tk, task.DeadLettered, "bad")
	require.ErrorIs(t, err, task.ErrGoexit)
}
