package worker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// A runtime on the in-memory backend: a route per kind, one pool for the
// "mail" queue, tasks enqueued through the producer. A permanent failure
// goes to the dead letter with its reason; a kind without a route is
// dead-lettered too, never dropped.
func Example() {
	ctx := context.Background()
	backend := memory.New(memory.Options{})
	done := make(chan struct{}, 3)
	rt, err := worker.New(worker.Params{
		Backend: backend,
		Config:  worker.Config{"mail": {Concurrency: 1}},
		Routes: []task.Route{{
			Kind:  "mail.send",
			Queue: "mail",
			Handler: task.HandlerFunc(func(_ context.Context, t *task.Task) error {
				defer func() { done <- struct{}{} }()
				if string(t.Payload) == "nobody@" {
					return task.Permanentf("bad address %q", t.Payload)
				}
				fmt.Printf("sent to %s (attempt %d)\n", t.Payload, t.Attempt)
				return nil
			}),
		}},
	})
	if err != nil {
		panic(err)
	}
	if err := rt.Start(ctx); err != nil {
		panic(err)
	}
	for _, to := range []string{"ann@example.org", "nobody@", "bob@example.org"} {
		if err := rt.Producer().Enqueue(ctx, &task.Task{Kind: "mail.send", Payload: []byte(to)}); err != nil {
			panic(err)
		}
	}
	_ = rt.Producer().Enqueue(ctx, &task.Task{Kind: "fax.send"})
	for range 3 {
		<-done
	}
	// The default pool dead-letters the unrouted kind.
	for {
		if dead, _ := backend.ListDead(ctx, task.DefaultQueue, 0); len(dead) == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}

	_ = rt.Stop(ctx)
	for _, q := range []string{"mail", task.DefaultQueue} {
		dead, _ := backend.ListDead(ctx, q, 0)
		for _, d := range dead {
			fmt.Printf("dead letter on %s: %s\n", q, d.Reason)
		}
	}
	mail, _ := rt.Pool("mail")
	st := mail.Stats()
	fmt.Printf("mail pool: processed %d, succeeded %d, dead %d\n", st.Processed, st.Succeeded, st.Dead)
	_ = backend.Close(ctx)
	// Output:
	// sent to ann@example.org (attempt 1)
	// sent to bob@example.org (attempt 1)
	// dead letter on mail: bad address "nobody@"
	// dead letter on default: no handler for kind fax.send
	// mail pool: processed 3, succeeded 2, dead 1
}

// Pause, resume and resize a running pool through its Go API.
func ExamplePool_Resize() {
	ctx := context.Background()
	backend := memory.New(memory.Options{})
	rt, err := worker.New(worker.Params{Backend: backend, Config: worker.Config{"reports": {Concurrency: 2}}})
	if err != nil {
		panic(err)
	}
	_ = rt.Start(ctx)
	p, _ := rt.Pool("reports")
	p.Pause()
	fmt.Println("paused:", p.Stats().Paused)
	p.Resume()
	_ = p.Resize(6)
	fmt.Println("paused:", p.Stats().Paused, "workers:", p.Stats().Workers)
	fmt.Println(p.Resize(0))
	_ = rt.Stop(ctx)
	_ = backend.Close(ctx)
	// Output:
	// paused: true
	// paused: false workers: 6
	// worker: pool size must be at least 1 (got 0)
}
