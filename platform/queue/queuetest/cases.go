package queuetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// earlyTolerance absorbs clock rounding between a backend's notion of a due
// time and the test's time.Now; anything earlier is a real early delivery.
const earlyTolerance = 10 * time.Millisecond

// longLease is used where a lease must not expire during the case.
const longLease = 30 * time.Second

type testCase struct {
	name string
	// skip returns a reason to skip the case for a backend with f, or "".
	skip func(f Features) string
	run  func(t *testing.T, s *suite)
}

var cases = []testCase{
	{name: "AckRemoves", run: testAckRemoves},
	{name: "RetryDelay", run: testRetryDelay},
	{name: "DeadLetterListRedrivePurge", run: testDeadLetter},
	{name: "DeadLetterRemoves", run: testDeadLetterRemoves},
	{name: "DeadQuery", run: testDeadQuery},
	{name: "MaxDeliveries", skip: func(f Features) string {
		if f.MaxDeliveries <= 0 {
			return "backend has no max-deliveries limit"
		}
		return ""
	}, run: testMaxDeliveries},
	{name: "Dedupe", run: testDedupe},
	{name: "DuplicateOfFinished", skip: func(f Features) string {
		if f.DedupWindow < time.Second {
			return "keys are not remembered after their task finished"
		}
		return ""
	}, run: testDuplicateOfFinished},
	{name: "EnqueueAgainAfterDeadLetter", skip: func(f Features) string {
		if f.DedupWindow < time.Second {
			return "keys are not remembered after their task finished"
		}
		return ""
	}, run: testEnqueueAgainAfterDeadLetter},
	{name: "DuplicateOfRedriven", skip: func(f Features) string {
		if f.DedupWindow < time.Second {
			return "keys are not remembered after their task finished"
		}
		return ""
	}, run: testDuplicateOfRedriven},
	{name: "ForgedFinishedMark", run: testForgedFinishedMark},
	{name: "DuplicateOfLive", run: testDuplicateOfLive},
	{name: "LeaseExpiry", run: testLeaseExpiry},
	{name: "Extend", run: testExtend},
	{name: "Release", run: testRelease},
	{name: "NoDoubleDelivery", run: testNoDoubleDelivery},
	{name: "BatchEnqueue", run: testBatchEnqueue},
	{name: "NotBefore", run: testNotBefore},
	{name: "Stats", run: testStats},
	{name: "LargePayload", run: testLargePayload},
	{name: "TraceHeaders", run: testTraceHeaders},
	{name: "LeaseCancel", run: testLeaseCancel},
	{name: "CloseUnblocksLease", run: testCloseUnblocksLease},
	{name: "CloseWaitsInFlight", run: testCloseWaitsInFlight},
	{name: "CloseDeadline", run: testCloseDeadline},
	{name: "Queues", run: testQueues},
	{name: "AfterClose", run: testAfterClose},
	{name: "InvalidTask", run: testInvalidTask},
}

func testAckRemoves(t *testing.T, s *suite) {
	tk := s.newTask("ack")
	s.enqueue(tk)
	require.NotEmpty(t, tk.ID, "Enqueue must fill the task id (Task.Prepare)")
	before := time.Now()
	d := s.leaseOne(s.f.Lease, s.f.Slack)
	require.Equal(t, tk.ID, d.Task.ID)
	require.Equal(t, "queuetest.kind", d.Task.Kind)
	require.Equal(t, s.q, d.Task.Queue)
	require.Equal(t, []byte("ack"), d.Task.Payload)
	require.Equal(t, 1, d.Task.Attempt, "first delivery is attempt 1")
	require.False(t, d.Task.EnqueuedAt.IsZero(), "EnqueuedAt is set")
	require.True(t, d.LeaseUntil.After(before), "LeaseUntil %s lies in the future", d.LeaseUntil)

	require.NoError(t, s.b.Ack(s.ctx, d))
	require.ErrorIs(t, s.b.Ack(s.ctx, d), queue.ErrLeaseLost, "second Ack")
	// Nothing comes back, not even after the lease would have ended.
	s.expectNone(2 * s.f.Lease)
}

// testDeadLetterRemoves: a dead-lettered task is not delivered again,
// not even after its lease would have ended: a handler would run it once
// more, and its source would hear of it again after its dead letter.
func testDeadLetterRemoves(t *testing.T, s *suite) {
	tk := s.newTask("dead")
	s.enqueue(tk)
	d := s.leaseOne(s.f.Lease, s.f.Slack)
	require.NoError(t, s.b.DeadLetter(s.ctx, d, "bad order 9"))
	s.requireLost(d)
	s.expectNone(2 * s.f.Lease)
	dead, err := s.b.ListDead(s.ctx, s.q, 0)
	require.NoError(t, err)
	require.Equal(t, []string{tk.ID}, deadIDs(dead))
}

func testRetryDelay(t *testing.T, s *suite) {
	tk := s.newTask("retry")
	tk.SetHeader("x-app", "kept")
	s.enqueue(tk)
	d1 := s.leaseOne(s.f.Lease, s.f.Slack)
	require.Equal(t, 1, d1.Task.Attempt)

	at := time.Now().Add(3 * s.f.Lease)
	require.NoError(t, s.b.Retry(s.ctx, d1, at))
	s.requireLost(d1)

	d2 := s.leaseOne(s.f.Lease, 3*s.f.Lease+s.f.Slack)
	now := time.Now()
	require.False(t, now.Before(at.Add(-earlyTolerance)), "retry delivered %s before its time", at.Sub(now))
	require.Equal(t, tk.ID, d2.Task.ID)
	require.Equal(t, 2, d2.Task.Attempt, "attempt increases on the retried delivery")
	require.Equal(t, []byte("retry"), d2.Task.Payload)
	require.Equal(t, "kept", d2.Task.Header("x-app"))

	// A retry at a past time is deliverable at once.
	require.NoError(t, s.b.Retry(s.ctx, d2, time.Now().Add(-time.Second)))
	d3 := s.leaseOne(s.f.Lease, s.f.Slack)
	require.Equal(t, 3, d3.Task.Attempt)
	require.NoError(t, s.b.Ack(s.ctx, d3))
}

func testDeadLetter(t *testing.T, s *suite) {
	start := time.Now()
	tasks := []*task.Task{s.newTask("d0"), s.newTask("d1"), s.newTask("d2")}
	for i, tk := range tasks {
		tk.SetHeader("x-n", fmt.Sprint(i))
	}
	s.enqueue(tasks...)
	ds := s.leaseN(3, longLease)
	slices.SortFunc(ds, func(a, b *queue.Delivery) int { return bytes.Compare(a.Task.Payload, b.Task.Payload) })
	for _, d := range ds {
		require.NoError(t, s.b.DeadLetter(s.ctx, d, "reason "+string(d.Task.Payload)))
		time.Sleep(2 * time.Millisecond) // distinct timestamps for "oldest first"
	}
	s.requireLost(ds[0])

	dead, err := s.b.ListDead(s.ctx, s.q, 0)
	require.NoError(t, err)
	require.Len(t, dead, 3)
	for i, dl := range dead {
		require.Equal(t, ds[i].Task.ID, dl.Task.ID, "oldest first")
		require.Equal(t, fmt.Sprintf("reason d%d", i), dl.Reason)
		require.Equal(t, fmt.Sprintf("d%d", i), string(dl.Task.Payload))
		require.Equal(t, fmt.Sprint(i), dl.Task.Header("x-n"))
		require.Equal(t, "queuetest.kind", dl.Task.Kind)
		require.False(t, dl.At.Before(start.Add(-earlyTolerance)), "At %s is before the case started", dl.At)
		require.False(t, dl.At.After(time.Now().Add(earlyTolerance)), "At %s is in the future", dl.At)
	}
	limited, err := s.b.ListDead(s.ctx, s.q, 2)
	require.NoError(t, err)
	require.Len(t, limited, 2)
	require.Equal(t, dead[0].Task.ID, limited[0].Task.ID)
	require.Equal(t, dead[1].Task.ID, limited[1].Task.ID)

	// Redrive one: delivered again with a fresh attempt count.
	n, err := s.b.Redrive(s.ctx, s.q, ds[1].Task.ID)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	d := s.leaseOne(s.f.Lease, s.f.Slack)
	require.Equal(t, ds[1].Task.ID, d.Task.ID)
	require.Equal(t, 1, d.Task.Attempt, "redriven tasks start with fresh attempts")
	require.Equal(t, "d1", string(d.Task.Payload))
	require.Equal(t, "1", d.Task.Header("x-n"))
	require.NoError(t, s.b.Ack(s.ctx, d))

	// Purge one by id.
	n, err = s.b.Purge(s.ctx, s.q, ds[0].Task.ID)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	dead, err = s.b.ListDead(s.ctx, s.q, 0)
	require.NoError(t, err)
	require.Equal(t, []string{ds[2].Task.ID}, deadIDs(dead))

	// Unknown ids move nothing.
	n, err = s.b.Redrive(s.ctx, s.q, "no-such-task")
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = s.b.Purge(s.ctx, s.q, "no-such-task")
	require.NoError(t, err)
	require.Zero(t, n)

	// Redrive all, dead-letter again, purge all.
	n, err = s.b.Redrive(s.ctx, s.q)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	d = s.leaseOne(s.f.Lease, s.f.Slack)
	require.Equal(t, ds[2].Task.ID, d.Task.ID)
	require.Equal(t, 1, d.Task.Attempt)
	require.NoError(t, s.b.DeadLetter(s.ctx, d, "again"))
	dead, err = s.b.ListDead(s.ctx, s.q, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "again", dead[0].Reason)
	n, err = s.b.Purge(s.ctx, s.q)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	dead, err = s.b.ListDead(s.ctx, s.q, 0)
	require.NoError(t, err)
	require.Empty(t, dead)
	s.expectNone(s.f.Lease / 2)
}

func deadIDs(dead []queue.DeadLetter) []string {
	out := make([]string, len(dead))
	for i, d := range dead {
		out[i] = d.Task.ID
	}
	return out
}

func testMaxDeliveries(t *testing.T, s *suite) {
	tk := s.newTask("poison")
	s.enqueue(tk)
	for i := 1; i <= s.f.MaxDeliveries; i++ {
		d := s.leaseOne(s.f.Lease, s.f.Lease+s.f.Slack)
		require.Equal(t, tk.ID, d.Task.ID)
		require.Equal(t, i, d.Task.Attempt)
		// Never settled: the lease expires.
	}
	deadline := time.Now().Add(s.f.Lease + s.f.Slack)
	for {
		dead, err := s.b.ListDead(s.ctx, s.q, 0)
		require.NoError(t, err)
		if len(dead) == 1 {
			require.Equal(t, tk.ID, dead[0].Task.ID)
			require.NotEmpty(t, dead[0].Reason)
			break
		}
		require.Empty(t, dead)
		require.True(t, time.Now().Before(deadline), "task not dead-lettered after %d expired leases", s.f.MaxDeliveries)
		time.Sleep(20 * time.Millisecond)
	}
	s.expectNone(s.f.Lease)
}

func testDedupe(t *testing.T, s *suite) {
	key := "key-" + s.q
	a, b := s.newTask("first"), s.newTask("second")
	a.Key, b.Key = key, key
	c := s.newTask("other")
	c.Key = "other-" + s.q
	s.enqueue(a)
	s.enqueue(b, c)
	// Duplicates inside one batch.
	x, y := s.newTask("batch-first"), s.newTask("batch-second")
	x.Key, y.Key = "batch-"+s.q, "batch-"+s.q
	s.enqueue(x, y)
	// Same id, no key: the id is the key.
	p, q := s.newTask("id-first"), s.newTask("id-second")
	p.ID, q.ID = "id-"+s.q, "id-"+s.q
	s.enqueue(p)
	s.enqueue(q)

	ds := s.leaseN(4, longLease)
	got := make([]string, 0, 4)
	for _, d := range ds {
		got = append(got, string(d.Task.Payload))
	}
	slices.Sort(got)
	require.Equal(t, []string{"batch-first", "first", "id-first", "other"}, got)

	// A key whose task is in flight is still refused, and not marked
	// finished: its task has not finished yet.
	again := s.newTask("while-leased")
	again.Key = key
	s.enqueue(again)
	s.expectNone(s.f.Lease / 2)
	_, _, finished := task.Finished(again)
	require.False(t, finished, "a duplicate of a task in flight is not marked finished")

	for _, d := range ds {
		require.NoError(t, s.b.Ack(s.ctx, d))
	}
	if s.f.DedupWindow >= time.Second {
		late := s.newTask("after-ack")
		late.Key = key
		s.enqueue(late)
		s.expectNone(s.f.Lease / 2)
	}
}

// testDuplicateOfFinished: a duplicate of a task that was acked, or
// dead-lettered, is dropped and marked with that outcome (and the dead
// letter's reason), so that whoever emitted it again can tell its source.
func testDuplicateOfFinished(t *testing.T, s *suite) {
	done, dead := s.newTask("done"), s.newTask("dead")
	done.Key, dead.Key = "done-"+s.q, "dead-"+s.q
	s.enqueue(done, dead)
	for _, d := range s.leaseN(2, longLease) {
		if d.Task.Key == done.Key {
			require.NoError(t, s.b.Ack(s.ctx, d))
		} else {
			require.NoError(t, s.b.DeadLetter(s.ctx, d, "bad order 7"))
		}
	}
	again, againDead := s.newTask("done-again"), s.newTask("dead-again")
	again.Key, againDead.Key = done.Key, dead.Key
	s.enqueue(again, againDead)
	s.expectNone(s.f.Lease / 2)
	o, reason, ok := task.Finished(again)
	require.True(t, ok, "a duplicate of an acked task is marked finished")
	require.Equal(t, task.Succeeded, o)
	require.Empty(t, reason)
	o, reason, ok = task.Finished(againDead)
	require.True(t, ok, "a duplicate of a dead letter is marked finished")
	require.Equal(t, task.DeadLettered, o)
	require.Equal(t, "bad order 7", reason)
}

// testDuplicateOfRedriven: a dead letter that is re-driven is queued
// again, no longer finished, so a duplicate of it is dropped without a
// finished mark (its emitter would otherwise tell its source the dead
// letter while the re-driven task runs, and may then succeed); once the
// re-driven task finished, a duplicate is marked with that new outcome.
func testDuplicateOfRedriven(t *testing.T, s *suite) {
	tk := s.newTask("redriven")
	tk.Key = "redriven-" + s.q
	s.enqueue(tk)
	d := s.leaseN(1, longLease)[0]
	require.NoError(t, s.b.DeadLetter(s.ctx, d, "bad order 8"))
	n, err := s.b.Redrive(s.ctx, s.q, tk.ID)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	again := s.newTask("redriven-again")
	again.Key = tk.Key
	s.enqueue(again)
	o, reason, ok := task.Finished(again)
	require.False(t, ok, "a duplicate of a re-driven task that is queued again is not finished (marked %q, %q)", o, reason)
	_, held := task.Held(again)
	require.True(t, held, "a duplicate of a re-driven task that is queued again is held by it")

	d = s.leaseN(1, longLease)[0]
	require.Equal(t, tk.ID, d.Task.ID, "the re-driven task, not the duplicate, is delivered")
	require.NoError(t, s.b.Ack(s.ctx, d))
	s.expectNone(s.f.Lease / 2)

	late := s.newTask("redriven-late")
	late.Key = tk.Key
	require.Eventually(t, func() bool {
		late.Headers = nil
		require.NoError(t, s.b.Enqueue(s.ctx, late))
		o, _, ok := task.Finished(late)
		return ok && o == task.Succeeded
	}, s.f.Slack, 20*time.Millisecond, "a duplicate of the re-driven task that succeeded is marked succeeded")
	s.expectNone(s.f.Lease / 2)
}

// testForgedFinishedMark: a task that arrives carrying the mark of a
// dropped duplicate (task.HeaderFinished, headers copied from outside) is
// stored like any other, is not marked finished once enqueued, and its
// deliveries do not carry the mark: its source would otherwise be told it
// finished before it ran.
func testForgedFinishedMark(t *testing.T, s *suite) {
	forged := s.newTask("forged")
	forged.SetHeader(task.HeaderFinished, string(task.Succeeded))
	forged.SetHeader(task.HeaderFinishedReason, "forged")
	forged.SetHeader("x-app", "kept")
	s.enqueue(forged)
	_, _, ok := task.Finished(forged)
	require.False(t, ok, "a task the backend stored is not marked finished")
	d := s.leaseN(1, longLease)[0]
	require.Equal(t, "forged", string(d.Task.Payload))
	_, _, ok = task.Finished(d.Task)
	require.False(t, ok, "its delivery carries no mark")
	require.Empty(t, d.Task.Header(task.HeaderFinishedReason))
	require.Equal(t, "kept", d.Task.Header("x-app"))
	require.NoError(t, s.b.Ack(s.ctx, d))
}

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
	first := 2 * s.f.Lease
	d := s.leaseOne(first, s.f.Slack)
	require.NoError(t, s.b.Extend(s.ctx, d, 6*s.f.Lease))
	// Well beyond the first term nobody else gets it.
	s.expectNone(4 * s.f.Lease)
	require.NoError(t, s.b.Extend(s.ctx, d, 6*s.f.Lease))
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

func testBatchEnqueue(t *testing.T, s *suite) {
	const n = 64
	tasks := make([]*task.Task, n)
	for i := range tasks {
		tasks[i] = s.newTask(fmt.Sprintf("%03d", i))
	}
	s.enqueue(tasks...)
	// Single enqueues after the batch keep their order too.
	for i := n; i < n+8; i++ {
		s.enqueue(s.newTask(fmt.Sprintf("%03d", i)))
	}
	var got []string
	for len(got) < n+8 {
		for _, d := range s.leaseN(min(7, n+8-len(got)), longLease) {
			got = append(got, string(d.Task.Payload))
			require.NoError(t, s.b.Ack(s.ctx, d))
		}
	}
	want := make([]string, n+8)
	for i := range want {
		want[i] = fmt.Sprintf("%03d", i)
	}
	if !s.f.FIFO {
		slices.Sort(got)
	}
	require.Equal(t, want, got)

	// A batch with one invalid task is refused as a whole.
	bad := []*task.Task{s.newTask("ok-1"), {Queue: s.q, Payload: []byte("no kind")}, s.newTask("ok-2")}
	require.ErrorIs(t, s.b.Enqueue(s.ctx, bad...), queue.ErrInvalidTask)
	s.expectNone(s.f.Lease / 2)
}

func testNotBefore(t *testing.T, s *suite) {
	later := s.newTask("later")
	later.NotBefore = time.Now().Add(3 * s.f.Lease)
	s.enqueue(later)
	past := s.newTask("past")
	past.NotBefore = time.Now().Add(-time.Minute)
	s.enqueue(past)
	now := s.newTask("now")
	s.enqueue(now)

	// The delayed task does not hold up the ready ones.
	ds := s.leaseN(2, longLease)
	got := []string{string(ds[0].Task.Payload), string(ds[1].Task.Payload)}
	slices.Sort(got)
	require.Equal(t, []string{"now", "past"}, got)

	d := s.leaseOne(longLease, 3*s.f.Lease+s.f.Slack)
	at := time.Now()
	require.False(t, at.Before(later.NotBefore.Add(-earlyTolerance)), "delivered %s before NotBefore", later.NotBefore.Sub(at))
	require.Equal(t, later.ID, d.Task.ID)
	require.Equal(t, 1, d.Task.Attempt)
	for _, d := range append(ds, d) {
		require.NoError(t, s.b.Ack(s.ctx, d))
	}
}

func testStats(t *testing.T, s *suite) {
	hour := time.Now().Add(time.Hour)
	delayed := s.newTask("delayed")
	delayed.NotBefore = hour
	s.enqueue(s.newTask("a"), s.newTask("b"), s.newTask("c"), delayed)
	s.stats(3, 1, 0, 0)

	ds := s.leaseN(2, longLease)
	s.stats(1, 1, 2, 0)
	require.NoError(t, s.b.Ack(s.ctx, ds[0]))
	s.stats(1, 1, 1, 0)
	require.NoError(t, s.b.DeadLetter(s.ctx, ds[1], "bad"))
	s.stats(1, 1, 0, 1)

	d := s.leaseOne(longLease, s.f.Slack)
	s.stats(0, 1, 1, 1)
	require.NoError(t, s.b.Retry(s.ctx, d, hour))
	s.stats(0, 2, 0, 1)

	n, err := s.b.Redrive(s.ctx, s.q)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	s.stats(1, 2, 0, 0)

	d = s.leaseOne(longLease, s.f.Slack)
	s.stats(0, 2, 1, 0)
	require.NoError(t, s.b.Retry(s.ctx, d, time.Now()))
	s.stats(1, 2, 0, 0)
	d = s.leaseOne(longLease, s.f.Slack)
	require.NoError(t, s.b.Ack(s.ctx, d))
	s.stats(0, 2, 0, 0)

	// A lease that expires moves its task back to ready.
	s.enqueue(s.newTask("expires"))
	s.stats(1, 2, 0, 0)
	s.leaseOne(s.f.Lease, s.f.Slack) // never settled
	s.stats(0, 2, 1, 0)
	time.Sleep(s.f.Lease + s.f.Lease/2)
	deadline := time.Now().Add(s.f.Slack)
	for {
		st, err := s.b.Stats(s.ctx, s.q)
		require.NoError(t, err)
		if st.Ready == 1 {
			require.Equal(t, queue.Stats{Queue: s.q, Ready: 1, Delayed: 2}, st)
			break
		}
		require.True(t, time.Now().Before(deadline), "expired lease still counted: %+v", st)
		time.Sleep(20 * time.Millisecond)
	}
}

func testLargePayload(t *testing.T, s *suite) {
	payload := make([]byte, 1<<20)
	_, err := rand.Read(payload)
	require.NoError(t, err)
	headers := map[string]string{"content-type": "application/octet-stream", "x-size": "1048576"}
	tk := s.newTask("")
	tk.Payload = payload
	tk.Headers = maps.Clone(headers)
	empty := s.newTask("")
	empty.Payload = nil
	s.enqueue(tk, empty)

	for _, d := range s.leaseN(2, longLease) {
		if d.Task.ID == tk.ID {
			require.Len(t, d.Task.Payload, len(payload))
			require.True(t, bytes.Equal(payload, d.Task.Payload), "1 MiB payload changed in transit")
			require.Equal(t, headers, d.Task.Headers)
		} else {
			require.Equal(t, empty.ID, d.Task.ID)
			require.Empty(t, d.Task.Payload)
		}
		require.NoError(t, s.b.Ack(s.ctx, d))
	}
}

// traceHeaders are W3C trace context and baggage values as telemetry sets
// them, plus application headers.
var traceHeaders = map[string]string{
	"traceparent":     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"tracestate":      "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
	"baggage":         "userId=alice,serverNode=DF%2028,isProduction=false",
	task.HeaderParent: "parent-task-id",
	"x-app-note":      "spaces, commas; unicode ü and = signs",
}

func testTraceHeaders(t *testing.T, s *suite) {
	tk := s.newTask("traced")
	tk.Headers = maps.Clone(traceHeaders)
	s.enqueue(tk)

	d := s.leaseOne(longLease, s.f.Slack)
	require.Equal(t, traceHeaders, d.Task.Headers, "first delivery")
	require.NoError(t, s.b.Retry(s.ctx, d, time.Now()))

	d = s.leaseOne(longLease, s.f.Slack)
	require.Equal(t, 2, d.Task.Attempt)
	require.Equal(t, traceHeaders, d.Task.Headers, "after a retry")
	require.NoError(t, s.b.DeadLetter(s.ctx, d, "check headers"))

	dead, err := s.b.ListDead(s.ctx, s.q, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, traceHeaders, dead[0].Task.Headers, "in the dead letter")
	n, err := s.b.Redrive(s.ctx, s.q)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	d = s.leaseOne(longLease, s.f.Slack)
	require.Equal(t, traceHeaders, d.Task.Headers, "after a redrive")
	require.NoError(t, s.b.Ack(s.ctx, d))
}

func testLeaseCancel(t *testing.T, s *suite) {
	// Cancelled while blocked.
	ctx, cancel := context.WithCancel(s.ctx)
	errc := goAsync(func() error {
		ds, err := s.b.Lease(ctx, s.q, 1, s.f.Lease)
		if len(ds) > 0 {
			return errors.New("delivery from an empty queue")
		}
		return err
	})
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	cancel()
	err := waitErr(t, errc, time.Second, "cancelled Lease")
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), time.Second)

	// Already cancelled.
	_, err = s.b.Lease(ctx, s.q, 1, s.f.Lease)
	require.ErrorIs(t, err, context.Canceled)

	// Deadline.
	start = time.Now()
	dctx, dcancel := context.WithTimeout(s.ctx, 100*time.Millisecond)
	defer dcancel()
	_, err = s.b.Lease(dctx, s.q, 1, s.f.Lease)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), time.Second)

	// The cancelled leasers took nothing with them.
	s.enqueue(s.newTask("after-cancel"))
	d := s.leaseOne(longLease, s.f.Slack)
	require.Equal(t, "after-cancel", string(d.Task.Payload))
	require.NoError(t, s.b.Ack(s.ctx, d))
}

func testCloseUnblocksLease(t *testing.T, s *suite) {
	errc := goAsync(func() error {
		ds, err := s.b.Lease(s.ctx, s.q, 1, s.f.Lease)
		if len(ds) > 0 {
			return errors.New("delivery from an empty queue")
		}
		return err
	})
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, s.b.Close(ctx))
	err := waitErr(t, errc, time.Second, "Lease blocked during Close")
	require.ErrorIs(t, err, queue.ErrClosed)
	require.Less(t, time.Since(start), time.Second)
}

func testCloseWaitsInFlight(t *testing.T, s *suite) {
	s.enqueue(s.newTask("a"), s.newTask("b"), s.newTask("c"))
	ds := s.leaseN(2, longLease)

	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	closed := goAsync(func() error { return s.b.Close(ctx) })
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with 2 deliveries in flight", err)
	case <-time.After(s.f.Lease / 2):
	}
	// Closing: no new leases, no new tasks.
	_, err := s.b.Lease(s.ctx, s.q, 1, s.f.Lease)
	require.ErrorIs(t, err, queue.ErrClosed, "Lease during Close")
	require.ErrorIs(t, s.b.Enqueue(s.ctx, s.newTask("late")), queue.ErrClosed, "Enqueue during Close")

	// Settlements during the wait succeed; the last one releases Close.
	require.NoError(t, s.b.Ack(s.ctx, ds[0]), "Ack during Close")
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with 1 delivery in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	require.NoError(t, s.b.Retry(s.ctx, ds[1], time.Now()), "Retry during Close")
	require.NoError(t, waitErr(t, closed, s.f.Slack, "Close after the last settlement"))
	require.NoError(t, s.b.Close(s.ctx), "second Close")

	if s.f.Reopen == nil {
		return
	}
	s.b = s.f.Reopen(t, s.b)
	require.NotNil(t, s.b, "Reopen returned a nil backend")
	// The acked task is gone; the retried and the untouched one are back.
	got := s.leaseN(2, longLease)
	require.ElementsMatch(t, []string{"b", "c"}, []string{string(got[0].Task.Payload), string(got[1].Task.Payload)})
	for _, d := range got {
		require.NoError(t, s.b.Ack(s.ctx, d))
	}
	s.expectNone(s.f.Lease / 2)
}

func testCloseDeadline(t *testing.T, s *suite) {
	tasks := []*task.Task{s.newTask("a"), s.newTask("b"), s.newTask("c"), s.newTask("dead")}
	s.enqueue(tasks...)
	ds := s.leaseN(4, s.f.Lease)
	for _, d := range ds {
		if string(d.Task.Payload) == "dead" {
			require.NoError(t, s.b.DeadLetter(s.ctx, d, "kept across restarts"))
		}
	}
	// Close must give up when its context ends, even with deliveries in
	// flight.
	ctx, cancel := context.WithTimeout(s.ctx, 100*time.Millisecond)
	defer cancel()
	_ = waitErr(t, goAsync(func() error { return s.b.Close(ctx) }), s.f.Slack, "Close with an ending context")
	for _, d := range ds {
		if string(d.Task.Payload) != "dead" {
			err := s.b.Ack(s.ctx, d)
			require.Error(t, err, "Ack after Close returned")
			require.True(t, errors.Is(err, queue.ErrClosed) || errors.Is(err, queue.ErrLeaseLost), "Ack after Close: %v", err)
		}
	}
	if s.f.Reopen == nil {
		return
	}
	s.b = s.f.Reopen(t, s.b)
	require.NotNil(t, s.b, "Reopen returned a nil backend")
	// Unsettled deliveries are delivered again (at the latest once their
	// lease ends), and the dead letter survived.
	ctxL, cancelL := context.WithTimeout(s.ctx, s.f.Lease+s.f.Slack)
	defer cancelL()
	var got []string
	for len(got) < 3 {
		more, err := s.b.Lease(ctxL, s.q, 3-len(got), longLease)
		require.NoError(t, err, "redelivery after reopen (got %v)", got)
		for _, d := range more {
			got = append(got, string(d.Task.Payload))
			require.NoError(t, s.b.Ack(s.ctx, d))
		}
	}
	require.ElementsMatch(t, []string{"a", "b", "c"}, got)
	dead, err := s.b.ListDead(s.ctx, s.q, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "kept across restarts", dead[0].Reason)
}

func testQueues(t *testing.T, s *suite) {
	other := QueueName(t, "queues2")
	s.enqueue(s.newTask("one"))
	tk := s.newTask("two")
	tk.Queue = other
	s.enqueue(tk)
	qs, err := s.b.Queues(s.ctx)
	require.NoError(t, err)
	require.Contains(t, qs, s.q)
	require.Contains(t, qs, other)
	require.True(t, slices.IsSorted(qs), "Queues sorted: %v", qs)
}

func testAfterClose(t *testing.T, s *suite) {
	s.enqueue(s.newTask("a"), s.newTask("b"))
	d := s.leaseOne(longLease, s.f.Slack)
	require.NoError(t, s.b.Ack(s.ctx, d))
	d = s.leaseOne(longLease, s.f.Slack)
	require.NoError(t, s.b.Ack(s.ctx, d))
	require.NoError(t, s.b.Close(s.ctx))
	require.NoError(t, s.b.Close(s.ctx), "Close is idempotent")

	ctx := s.ctx
	_, err := s.b.Lease(ctx, s.q, 1, s.f.Lease)
	require.ErrorIs(t, err, queue.ErrClosed, "Lease")
	require.ErrorIs(t, s.b.Enqueue(ctx, s.newTask("x")), queue.ErrClosed, "Enqueue")
	require.ErrorIs(t, s.b.Ack(ctx, d), queue.ErrClosed, "Ack")
	require.ErrorIs(t, s.b.Retry(ctx, d, time.Now()), queue.ErrClosed, "Retry")
	require.ErrorIs(t, s.b.DeadLetter(ctx, d, "x"), queue.ErrClosed, "DeadLetter")
	require.ErrorIs(t, s.b.Extend(ctx, d, s.f.Lease), queue.ErrClosed, "Extend")
	require.ErrorIs(t, s.b.Release(ctx, d), queue.ErrClosed, "Release")
	_, err = s.b.Stats(ctx, s.q)
	require.ErrorIs(t, err, queue.ErrClosed, "Stats")
	_, err = s.b.Queues(ctx)
	require.ErrorIs(t, err, queue.ErrClosed, "Queues")
	_, err = s.b.ListDead(ctx, s.q, 0)
	require.ErrorIs(t, err, queue.ErrClosed, "ListDead")
	_, err = s.b.Redrive(ctx, s.q)
	require.ErrorIs(t, err, queue.ErrClosed, "Redrive")
	_, err = s.b.Purge(ctx, s.q)
	require.ErrorIs(t, err, queue.ErrClosed, "Purge")
}

func testInvalidTask(t *testing.T, s *suite) {
	require.ErrorIs(t, s.b.Enqueue(s.ctx, &task.Task{Queue: s.q}), queue.ErrInvalidTask, "no kind")
	require.ErrorIs(t, s.b.Enqueue(s.ctx, &task.Task{Kind: "k"}), queue.ErrInvalidTask, "no queue")
	require.ErrorIs(t, s.b.Enqueue(s.ctx, nil), queue.ErrInvalidTask, "nil task")
	require.NoError(t, s.b.Enqueue(s.ctx), "an empty batch is a no-op")
	s.expectNone(s.f.Lease / 2)
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
