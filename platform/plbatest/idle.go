package plbatest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/plba/plba/platform/queue"
)

// pollEvery is how often RunUntilIdle looks at the queues.
const pollEvery = 2 * time.Millisecond

// RunUntilIdle waits until every task is settled: no queue has a task
// ready, in flight or waiting, and no delivery is between its handler and
// its settlement. While tasks only wait for a later time (a retry's
// back-off, a NotBefore), it moves the clock to the earliest of them, so
// retries run at once. Dead letters stay (they are settled). The test
// fails after the kit's Timeout (real time), naming what is left.
//
// Work a source has yet to emit is not seen: drive the source first, or
// wait for its tasks with WaitEnqueued.
func (k *Kit) RunUntilIdle() {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), k.timeout)
	defer cancel()
	if err := k.runUntilIdle(ctx); err != nil {
		k.t.Fatalf("plbatest: RunUntilIdle: %v", err)
	}
}

func (k *Kit) runUntilIdle(ctx context.Context) error {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	quiet := 0
	for {
		st, err := k.stats(ctx)
		if err != nil {
			return err
		}
		busy := k.rec.busy()
		switch {
		case busy > 0 || st.Ready > 0 || st.InFlight > 0:
			quiet = 0
		case st.Delayed > 0:
			quiet = 0
			if at, ok := k.backend.NextDue(); ok {
				k.clock.Advance(at.Sub(k.clock.Now()))
			}
			k.backend.Wake()
		default:
			// Idle twice in a row: a delivery that was being handed from
			// the backend to a worker between the two looks is seen.
			if quiet++; quiet >= 2 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not idle after %s: %s; %d deliveries being handled", k.timeout, k.describe(ctx), busy)
		case <-tick.C:
		}
	}
}

// stats sums the counts of every queue.
func (k *Kit) stats(ctx context.Context) (queue.Stats, error) {
	var sum queue.Stats
	names, err := k.backend.Queues(ctx)
	if err != nil {
		return sum, fmt.Errorf("list queues: %w", err)
	}
	for _, n := range names {
		st, err := k.backend.Stats(ctx, n)
		if err != nil {
			return sum, fmt.Errorf("stats of %q: %w", n, err)
		}
		sum.Ready += st.Ready
		sum.InFlight += st.InFlight
		sum.Delayed += st.Delayed
		sum.Dead += st.Dead
	}
	return sum, nil
}

// describe lists the queues that still hold work.
func (k *Kit) describe(ctx context.Context) string {
	names, _ := k.backend.Queues(context.WithoutCancel(ctx))
	var parts []string
	for _, n := range names {
		st, err := k.backend.Stats(context.WithoutCancel(ctx), n)
		if err == nil && st.Ready+st.InFlight+st.Delayed > 0 {
			parts = append(parts, fmt.Sprintf("queue %q: %d ready, %d in flight, %d delayed (is a pool serving it?)", n, st.Ready, st.InFlight, st.Delayed))
		}
	}
	if len(parts) == 0 {
		return "the queues are empty"
	}
	return strings.Join(parts, "; ")
}
