package queuetest

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
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
	{name: "DeadActionsReportEachLeft", run: testDeadActionsReportEachLeft},
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
	{name: "KeySpaces", run: testKeySpaces},
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

func testInvalidTask(t *testing.T, s *suite) {
	require.ErrorIs(t, s.b.Enqueue(s.ctx, &task.Task{Queue: s.q}), queue.ErrInvalidTask, "no kind")
	require.ErrorIs(t, s.b.Enqueue(s.ctx, &task.Task{Kind: "k"}), queue.ErrInvalidTask, "no queue")
	require.ErrorIs(t, s.b.Enqueue(s.ctx, nil), queue.ErrInvalidTask, "nil task")
	require.NoError(t, s.b.Enqueue(s.ctx), "an empty batch is a no-op")
	s.expectNone(s.f.Lease / 2)
}
