package workerbench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// Kind is the task kind the benchmarks route to their no-op handler.
const Kind = "bench.noop"

// Options shape one benchmark run. Zero fields take defaults.
type Options struct {
	// Concurrency is the pool size (and, for the baseline, the number of
	// consumer goroutines). Default 8.
	Concurrency int
	// EmitBatch is how many tasks the source emits per Emit call.
	// Default 64.
	EmitBatch int
	// Pool overrides the pool's settings (Concurrency is taken from
	// Concurrency above).
	Pool worker.PoolConfig
}

func (o Options) withDefaults() Options {
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.EmitBatch <= 0 {
		o.EmitBatch = 64
	}
	return o
}

// recorder collects the handler's latencies and signals when all n tasks
// were handled.
type recorder struct {
	lat  []int64
	next atomic.Int64
	done chan struct{}
}

func newRecorder(n int) *recorder {
	return &recorder{lat: make([]int64, n), done: make(chan struct{})}
}

func (r *recorder) record(enqueued time.Time) {
	d := time.Since(enqueued)
	i := r.next.Add(1)
	if int(i) <= len(r.lat) {
		r.lat[i-1] = int64(d)
	}
	if int(i) == len(r.lat) {
		close(r.done)
	}
}

// report adds tasks/s, CPU time per task and latency percentiles to b.
// CPU time (user + system, all threads) is what the work costs whatever
// else the machine runs; tasks/s also depends on how busy it is.
func (r *recorder) report(b *testing.B, elapsed, cpu time.Duration) {
	n := min(int(r.next.Load()), len(r.lat))
	if n == 0 || elapsed <= 0 {
		return
	}
	lat := r.lat[:n]
	slices.Sort(lat)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "tasks/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu)/float64(n), "cpu-ns/task")
	}
	b.ReportMetric(float64(lat[n/2])/1e3, "p50-µs")
	b.ReportMetric(float64(lat[min(n-1, n*99/100)])/1e3, "p99-µs")
}

// emitter is a source that emits n tasks in batches, then finishes.
type emitter struct {
	n, batch int
}

func (e *emitter) Name() string { return "workerbench" }

func (e *emitter) Run(ctx context.Context, emit source.Emitter) error {
	buf := make([]*task.Task, 0, e.batch)
	for sent := 0; sent < e.n; {
		buf = buf[:0]
		for i := 0; i < e.batch && sent+i < e.n; i++ {
			buf = append(buf, &task.Task{Kind: Kind})
		}
		if err := emit.Emit(ctx, buf...); err != nil {
			return fmt.Errorf("workerbench: emit: %w", err)
		}
		sent += len(buf)
	}
	return nil
}

// Runtime measures b.N no-op tasks through a worker.Runtime on the backend
// newBackend returns: a source emits them in batches, one pool of
// o.Concurrency workers handles them. The backend is closed afterwards.
func Runtime(b *testing.B, newBackend func(tb testing.TB) queue.Backend, o Options) {
	b.Helper()
	o = o.withDefaults()
	be := newBackend(b)
	defer closeBackend(b, be)
	rec := newRecorder(b.N)
	rt := newRuntime(b, be, o, &emitter{n: b.N, batch: o.EmitBatch}, func(t *task.Task) { rec.record(t.EnqueuedAt) })
	runTimed(b, rt, rec)
}

// ChannelBaseline does Runtime's work without the runtime: one producer
// goroutine sends b.N tasks (allocated and time-stamped like the source's)
// into a buffered channel, o.Concurrency goroutines receive them and call
// the same no-op handler.
func ChannelBaseline(b *testing.B, o Options) {
	b.Helper()
	o = o.withDefaults()
	rec := newRecorder(b.N)
	h := task.HandlerFunc(func(_ context.Context, t *task.Task) error {
		rec.record(t.EnqueuedAt)
		return nil
	})
	ch := make(chan *task.Task, 10_000)
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), CPUTime()
	ctx := context.Background()
	for range o.Concurrency {
		wg.Go(func() {
			for t := range ch {
				_ = h.Handle(ctx, t)
			}
		})
	}
	wg.Go(func() {
		for range b.N {
			ch <- &task.Task{Kind: Kind, EnqueuedAt: time.Now()}
		}
		close(ch)
	})
	<-rec.done
	elapsed, cpu := time.Since(start), CPUTime()-cpu0
	b.StopTimer()
	wg.Wait()
	rec.report(b, elapsed, cpu)
}

// pingSource emits one task at a time and waits until it was handled
// before emitting the next.
type pingSource struct {
	n       int
	handled chan struct{}
}

func (p *pingSource) Name() string { return "workerbench-ping" }

func (p *pingSource) Run(ctx context.Context, emit source.Emitter) error {
	for range p.n {
		if err := emit.Emit(ctx, &task.Task{Kind: Kind}); err != nil {
			return fmt.Errorf("workerbench: emit: %w", err)
		}
		select {
		case <-p.handled:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// Latency measures enqueue-to-handler latency without queueing: a source
// emits one no-op task, waits until the handler ran, and emits the next
// (a closed loop), b.N times. Compare Runtime, whose latency under
// saturation is dominated by the time tasks wait in a full queue.
func Latency(b *testing.B, newBackend func(tb testing.TB) queue.Backend, o Options) {
	b.Helper()
	o = o.withDefaults()
	be := newBackend(b)
	defer closeBackend(b, be)
	rec := newRecorder(b.N)
	ping := &pingSource{n: b.N, handled: make(chan struct{}, 1)}
	rt := newRuntime(b, be, o, ping, func(t *task.Task) {
		rec.record(t.EnqueuedAt)
		ping.handled <- struct{}{}
	})
	runTimed(b, rt, rec)
}

// ChannelLatency is Latency's closed loop through a channel and
// o.Concurrency goroutines.
func ChannelLatency(b *testing.B, o Options) {
	b.Helper()
	o = o.withDefaults()
	rec := newRecorder(b.N)
	handled := make(chan struct{}, 1)
	ch := make(chan *task.Task, 10_000)
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), CPUTime()
	for range o.Concurrency {
		wg.Go(func() {
			for t := range ch {
				rec.record(t.EnqueuedAt)
				handled <- struct{}{}
			}
		})
	}
	for range b.N {
		ch <- &task.Task{Kind: Kind, EnqueuedAt: time.Now()}
		<-handled
	}
	close(ch)
	<-rec.done
	elapsed, cpu := time.Since(start), CPUTime()-cpu0
	b.StopTimer()
	wg.Wait()
	rec.report(b, elapsed, cpu)
}

// pacer is an open-loop source: it emits n tasks at rate tasks/s whether
// or not earlier ones were handled, each stamped with the time it is
// emitted. Behind schedule (a slow Emit) it catches up in batches of at
// most batch tasks.
type pacer struct {
	n, batch int
	rate     float64
}

func (p *pacer) Name() string { return "workerbench-pacer" }

func (p *pacer) Run(ctx context.Context, emit source.Emitter) error {
	buf := make([]*task.Task, 0, p.batch)
	start := time.Now()
	for sent := 0; sent < p.n; {
		due := min(p.n, int(time.Since(start).Seconds()*p.rate)+1)
		if due <= sent {
			next := start.Add(time.Duration(float64(sent) / p.rate * float64(time.Second)))
			select {
			case <-time.After(time.Until(next)):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		buf = buf[:0]
		now := time.Now()
		for range min(due-sent, p.batch) {
			buf = append(buf, &task.Task{Kind: Kind, EnqueuedAt: now})
		}
		if err := emit.Emit(ctx, buf...); err != nil {
			return fmt.Errorf("workerbench: emit: %w", err)
		}
		sent += len(buf)
	}
	return nil
}

// newRuntime builds a worker.Runtime on be fed by src, with one pool of
// o.Concurrency workers on the default queue whose handler calls handle.
func newRuntime(tb testing.TB, be queue.Backend, o Options, src source.Source, handle func(*task.Task)) *worker.Runtime {
	tb.Helper()
	route := task.Route{Kind: Kind, Handler: task.HandlerFunc(func(_ context.Context, t *task.Task) error {
		handle(t)
		return nil
	})}
	pc := o.Pool
	pc.Concurrency = o.Concurrency
	rt, err := worker.New(worker.Params{
		Routes:  []task.Route{route},
		Backend: be,
		Config:  worker.Config{task.DefaultQueue: pc},
		Sources: []source.Source{src},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return rt
}

// drive runs src through a worker.Runtime with one pool of o.Concurrency
// workers on be until rec saw every task, and returns the time that took.
func drive(tb testing.TB, be queue.Backend, o Options, src source.Source, rec *recorder) time.Duration {
	tb.Helper()
	rt := newRuntime(tb, be, o, src, func(t *task.Task) { rec.record(t.EnqueuedAt) })
	ctx := context.Background()
	if err := rt.StartPools(ctx); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	if err := rt.StartSources(ctx); err != nil {
		tb.Fatal(err)
	}
	select {
	case <-rec.done:
	case <-time.After(10 * time.Minute):
		tb.Fatalf("only %d of %d tasks handled", rec.next.Load(), len(rec.lat))
	}
	elapsed := time.Since(start)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := rt.Stop(sctx); err != nil {
		tb.Errorf("stop runtime: %v", err)
	}
	return elapsed
}

// closeBackend closes be within 30s.
func closeBackend(tb testing.TB, be queue.Backend) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := be.Close(ctx); err != nil {
		tb.Errorf("close backend: %v", err)
	}
}

// OpenLoop measures enqueue-to-handler latency under a steady load below
// saturation: an open-loop source emits b.N no-op tasks at rate tasks/s
// (not waiting for them to be handled), each stamped with the time it is
// emitted, and the handler records how long after that it started. With
// rate <= 0 the rate is half the peak: first b.N tasks are emitted as
// fast as possible through a runtime on a backend of their own (as
// Runtime does) and their throughput is the peak. Reported: the peak and
// target rates, the achieved tasks/s, p50/p99/p99.9 latency and CPU per
// task of the open-loop phase.
func OpenLoop(b *testing.B, newBackend func(tb testing.TB) queue.Backend, o Options, rate float64) {
	b.Helper()
	o = o.withDefaults()
	b.StopTimer()
	peak := 0.0
	if rate <= 0 {
		be := newBackend(b)
		rec := newRecorder(b.N)
		elapsed := drive(b, be, o, &emitter{n: b.N, batch: o.EmitBatch}, rec)
		closeBackend(b, be)
		peak = float64(b.N) / elapsed.Seconds()
		rate = peak / 2
	}
	be := newBackend(b)
	defer closeBackend(b, be)
	rec := newRecorder(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	b.StartTimer()
	cpu0 := CPUTime()
	elapsed := drive(b, be, o, &pacer{n: b.N, batch: o.EmitBatch, rate: rate}, rec)
	cpu := CPUTime() - cpu0
	b.StopTimer()
	if peak > 0 {
		b.ReportMetric(peak, "peak-tasks/s")
	}
	b.ReportMetric(rate, "target-tasks/s")
	rec.report(b, elapsed, cpu)
	lat := rec.lat[:min(int(rec.next.Load()), len(rec.lat))]
	if n := len(lat); n > 0 {
		b.ReportMetric(float64(lat[min(n-1, n*999/1000)])/1e3, "p99.9-µs")
	}
}

// runTimed starts rt's pools, then (timer running) its sources, waits until
// rec saw b.N tasks, stops rt and reports.
func runTimed(b *testing.B, rt *worker.Runtime, rec *recorder) {
	b.Helper()
	ctx := context.Background()
	if err := rt.StartPools(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), CPUTime()
	if err := rt.StartSources(ctx); err != nil {
		b.Fatal(err)
	}
	select {
	case <-rec.done:
	case <-time.After(10 * time.Minute):
		b.Fatalf("only %d of %d tasks handled", rec.next.Load(), b.N)
	}
	elapsed, cpu := time.Since(start), CPUTime()-cpu0
	b.StopTimer()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := rt.Stop(sctx); err != nil {
		b.Errorf("stop runtime: %v", err)
	}
	rec.report(b, elapsed, cpu)
}
