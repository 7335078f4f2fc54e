package queuetest

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
	"github.com/plba/plba/platform/task"
)

// The cases about leases: the task comes again when its lease ends (not
// before), Extend keeps it, Release gives it back without counting the
// attempt, a cancelled Lease takes nothing, and concurrent leasers never
// get the same task.

func testLeaseExpiry(t *testing.T, s *suite) {
	tk := s.newTask("expire")
	s.enqueue(tk)
	d1 := s.leaseOne(s.f.Lease, s.f.Slack)
	require.Equal(t, 1, d1.Task.Attempt)
	// Blocks until the first lease ends, then gets the task again.
	d2 := s.leaseOne(longLease, s.f.Lease+s.f.Slack)
	now := time.Now()
	require.False(t, now.Before(d1.LeaseUntil.Add(-earlyTolerance)),
		"redelivered %s before the first lease ended", d1.LeaseUntil.Sub(now))
	require.Equal(t, tk.ID, d2.Task.ID)
	require.Equal(t, 2, d2.Task.Attempt)
	require.Equal(t, []byte("expire"), d2.Task.Payload)
	s.requireLost(d1)
	require.NoError(t, s.b.Ack(s.ctx, d2))
	s.expectNone(s.f.Lease / 2)
}

func testExtend(t *testing.T, s *suite) {
	s.enqueue(s.newTask("extend"))
	// The first term leaves the test four lease units to call Extend in:
	// on a loaded machine a goroutine can wait hundreds of milliseconds
	// for a core, and a term that ran out before Extend is no test of it.
	first := 4 * s.f.Lease
	d := s.leaseOne(first, s.f.Slack)
	require.NoError(t, s.b.Extend(s.ctx, d, 10*s.f.Lease))
	// Well beyond the first term nobody else gets it.
	s.expectNone(6 * s.f.Lease)
	require.NoError(t, s.b.Extend(s.ctx, d, 10*s.f.Lease))
	require.NoError(t, s.b.Ack(s.ctx, d))
	require.ErrorIs(t, s.b.Extend(s.ctx, d, s.f.Lease), queue.ErrLeaseLost, "Extend after Ack")
}

func testNoDoubleDelivery(t *testing.T, s *suite) {
	const total, consumers = 400, 8
	want := make(map[string]bool, total)
	batch := make([]*task.Task, 0, 50)
	for i := range total {
		tk := s.newTask(fmt.Sprint(i))
		batch = append(batch, tk)
		if len(batch) == cap(batch) {
			s.enqueue(batch...)
			for _, tk := range batch {
				want[tk.ID] = true
			}
			batch = batch[:0]
		}
	}

	ctx, cancel := context.WithTimeout(s.ctx, 10*s.f.Slack)
	defer cancel()
	var (
		mu    sync.Mutex
		seen  = make(map[string]int, total)
		count atomic.Int64
		wg    sync.WaitGroup
		errs  = make(chan error, consumers)
	)
	for c := range consumers {
		wg.Go(func() {
			for {
				ds, err := s.b.Lease(ctx, s.q, 1+c%4, longLease)
				if err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("consumer %d: lease: %w", c, err)
					}
					return
				}
				for _, d := range ds {
					mu.Lock()
					seen[d.Task.ID]++
					mu.Unlock()
					if d.Task.Attempt != 1 {
						errs <- fmt.Errorf("task %s delivered with attempt %d", d.Task.ID, d.Task.Attempt)
						return
					}
					if err := s.b.Ack(context.Background(), d); err != nil {
						errs <- fmt.Errorf("consumer %d: ack: %w", c, err)
						return
					}
					if count.Add(1) == total {
						cancel()
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int64(total), count.Load(), "all tasks delivered before the deadline")
	require.Len(t, seen, total)
	for id, n := range seen {
		require.True(t, want[id], "unknown task %s delivered", id)
		require.Equal(t, 1, n, "task %s delivered %d times", id, n)
	}
	s.expectNone(s.f.Lease / 2)
}

// testLeaseCancel: a Lease on an empty queue returns when its ctx is
// cancelled while it waits, at once when it is cancelled already, and at
// its deadline; the cancelled leasers take nothing with them.
func testLeaseCancel(t *testing.T, s *suite) {
	// Deadline. First, so that the queue is set up (a backend may create
	// it on the first Lease, using the Lease's ctx) before the case below
	// takes a Lease's first look at ctx.Done as its wait.
	start := time.Now()
	dctx, dcancel := context.WithTimeout(s.ctx, 100*time.Millisecond)
	defer dcancel()
	_, err := s.b.Lease(dctx, s.q, 1, s.f.Lease)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), time.Second)

	// Cancelled while blocked: cancelled once Lease asked for ctx.Done,
	// which a Lease that waits on its ctx does as it starts waiting.
	cctx, cancel := context.WithCancel(s.ctx)
	ctx := newDoneWatch(cctx)
	errc := goAsync(func() error {
		ds, err := s.b.Lease(ctx, s.q, 1, s.f.Lease)
		if len(ds) > 0 {
			return errors.New("delivery from an empty queue")
		}
		return err
	})
	select {
	case <-ctx.asked:
	case err := <-errc:
		cancel()
		require.Failf(t, "Lease on an empty queue returned before its ctx was cancelled", "error: %v", err)
	case <-time.After(s.f.Slack):
		// A backend that waits without ctx.Done (polling ctx.Err): it is
		// cancelled all the same.
		t.Logf("Lease did not ask for ctx.Done within %s: cancelled without knowing it waits", s.f.Slack)
	}
	start = time.Now()
	cancel()
	err = waitErr(t, errc, time.Second, "cancelled Lease")
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), time.Second)

	// Already cancelled.
	_, err = s.b.Lease(ctx, s.q, 1, s.f.Lease)
	require.ErrorIs(t, err, context.Canceled)

	// The cancelled leasers took nothing with them.
	s.enqueue(s.newTask("after-cancel"))
	d := s.leaseOne(longLease, s.f.Slack)
	require.Equal(t, "after-cancel", string(d.Task.Payload))
	require.NoError(t, s.b.Ack(s.ctx, d))
}

// doneWatch is a context that tells when its Done channel is first
// asked for: a blocking call that waits on its ctx asks for it as it
// starts waiting.
type doneWatch struct {
	context.Context
	once  sync.Once
	asked chan struct{}
}

func newDoneWatch(ctx context.Context) *doneWatch {
	return &doneWatch{Context: ctx, asked: make(chan struct{})}
}

// Done returns the context's Done channel, and closes w.asked the first
// time.
func (w *doneWatch) Done() <-chan struct{} {
	w.once.Do(func() { close(w.asked) })
	return w.Context.Done()
}

// testRelease: Release gives a delivery back at once without counting its
// attempt, keeping the task as it was; a released, settled or expired
// delivery cannot be released (or settled) again.
func testRelease(t *testing.T, s *suite) {
	tk := s.newTask("release")
	tk.SetHeader("x-app", "kept")
	s.enqueue(tk)
	d1 := s.leaseOne(longLease, s.f.Slack)
	require.NoError(t, s.b.Retry(s.ctx, d1, time.Now()))
	d2 := s.leaseOne(longLease, s.f.Slack)
	require.Equal(t, 2, d2.Task.Attempt)

	require.NoError(t, s.b.Release(s.ctx, d2))
	s.requireLost(d2)
	require.ErrorIs(t, s.b.Release(s.ctx, d2), queue.ErrLeaseLost, "second Release")
	s.stats(1, 0, 0, 0)
	d3 := s.leaseOne(longLease, s.f.Slack)
	require.Equal(t, tk.ID, d3.Task.ID)
	require.Equal(t, 2, d3.Task.Attempt, "a release does not count the attempt")
	require.Equal(t, []byte("release"), d3.Task.Payload)
	require.Equal(t, "kept", d3.Task.Header("x-app"))
	require.NoError(t, s.b.Ack(s.ctx, d3))
	require.ErrorIs(t, s.b.Release(s.ctx, d3), queue.ErrLeaseLost, "Release after Ack")

	// A delivery whose lease expired is not released: the task is
	// delivered again as a new attempt, and that delivery holds it.
	s.enqueue(s.newTask("expires"))
	old := s.leaseOne(s.f.Lease, s.f.Slack)
	again := s.leaseOne(longLease, s.f.Lease+s.f.Slack)
	require.Equal(t, old.Task.ID, again.Task.ID)
	require.ErrorIs(t, s.b.Release(s.ctx, old), queue.ErrLeaseLost, "Release of an expired delivery")
	require.NoError(t, s.b.Ack(s.ctx, again))
	s.stats(0, 0, 0, 0)
}
