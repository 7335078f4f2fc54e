// Command callgrind runs the peers harness's plba-memory workload in one
// process, for valgrind's callgrind, which counts instructions (and
// simulated cache misses) the same on every run whatever the machine's
// load: the host's default telemetry, the memory queue, a producer that
// enqueues -n tasks (128-byte payloads) in batches of 5,000, and with
// -work a runtime whose one pool of -c workers runs them all through a
// no-op handler. run.sh runs it with and without -work and prints the
// difference per task: the cost of a task worked. See BENCHMARKS.md.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/telemetry"
	"github.com/plba/plba/platform/worker"
)

const kind = "peers.noop"

// counted is the host's observer plus a count of the tasks that
// succeeded, closing done at the n-th.
type counted struct {
	task.Observer
	n, want atomic.Int64
	done    chan struct{}
}

func (o *counted) Finished(ctx context.Context, t *task.Task, out task.Outcome, err error, reason string, took time.Duration) {
	o.Observer.Finished(ctx, t, out, err, reason, took)
	if out == task.Succeeded && o.n.Add(1) == o.want.Load() {
		close(o.done)
	}
}

func main() {
	n := flag.Int("n", 50_000, "tasks")
	c := flag.Int("c", 8, "workers")
	work := flag.Bool("work", false, "work the tasks after enqueueing them")
	flag.Parse()
	if err := run(*n, *c, *work); err != nil {
		fmt.Fprintln(os.Stderr, "callgrind:", err)
		os.Exit(1)
	}
}

func run(n, c int, work bool) error {
	ctx := context.Background()
	tel, err := telemetry.New(ctx, telemetry.DefaultConfig())
	if err != nil {
		return err
	}
	defer tel.Shutdown(ctx)
	be := memory.New(memory.Options{Capacity: 1 << 24})
	defer be.Close(ctx)
	route := task.Route{Kind: kind, Name: "peers",
		Handler: task.HandlerFunc(func(context.Context, *task.Task) error { return nil })}
	router, err := worker.NewRouter([]task.Route{route})
	if err != nil {
		return err
	}
	prod := worker.NewProducer(be, router, tel.Observer())
	payload := bytes.Repeat([]byte("x"), 128)
	for done := 0; done < n; done += 5000 {
		tasks := make([]*task.Task, min(5000, n-done))
		for i := range tasks {
			tasks[i] = &task.Task{Kind: kind, Payload: bytes.Clone(payload)}
		}
		if err := prod.Enqueue(ctx, tasks...); err != nil {
			return err
		}
	}
	if !work {
		return nil
	}
	obs := &counted{Observer: tel.Observer(), done: make(chan struct{})}
	obs.want.Store(int64(n))
	rt, err := worker.New(worker.Params{Routes: []task.Route{route}, Backend: be,
		Config: worker.Config{task.DefaultQueue: {Concurrency: c}}, Observer: obs, Producer: prod})
	if err != nil {
		return err
	}
	if err := rt.StartPools(ctx); err != nil {
		return err
	}
	<-obs.done
	return rt.Stop(ctx)
}
