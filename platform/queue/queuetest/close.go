package queuetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// The cases about Close: it unblocks Lease, waits for deliveries in flight
// within its deadline, and every call after it fails.

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
