package source

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// unanswered is an Enqueuer in front of a memory backend whose first
// call gets no answer, as a publish does when the NATS server leading the
// work stream stops with it in flight: the call waits until its ctx ends
// and reports the outcome unknown, as the JetStream backend does. With
// stores, the server stored the task before it stopped (a follower has
// it); without, it was lost with the server. Later calls pass through.
type unanswered struct {
	be     *memory.Backend
	stores bool

	mu    sync.Mutex
	calls int
	left  []time.Duration // per call: the time its ctx had left (-1: no deadline)
}

func (u *unanswered) Enqueue(ctx context.Context, tasks ...*task.Task) error {
	for _, t := range tasks {
		t.Queue = "q"
	}
	u.mu.Lock()
	u.calls++
	first := u.calls == 1
	left := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	u.left = append(u.left, left)
	u.mu.Unlock()
	if !first {
		return u.be.Enqueue(ctx, tasks...)
	}
	if u.stores {
		if err := u.be.Enqueue(context.Background(), tasks...); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return fmt.Errorf("publish ack: %w (%w)", ctx.Err(), queue.ErrOutcomeUnknown)
}

func (u *unanswered) deadlines() []time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]time.Duration(nil), u.left...)
}

// An emit that gets no answer (the NATS server leading the work stream
// stopped with the publish in flight) is cut at the attempt's timeout,
// not left to wait out the backend's publish_timeout while the due times
// of a frequent schedule pass: the retry then sends the copy with the
// same key, and the due time's task is stored once, whether or not the
// unanswered attempt stored it. Before, the attempt waited for ever on a
// backend without a timeout of its own (here), and for publish_timeout
// (10 s) on JetStream.
func TestScheduleCutsAnUnansweredEmitAndRetriesIt(t *testing.T) {
	for name, stores := range map[string]bool{"stored before the answer was lost": true, "lost with the server": false} {
		t.Run(name, func(t *testing.T) {
			be := memory.New(memory.Options{DedupWindow: 2 * time.Minute})
			t.Cleanup(func() { _ = be.Close(context.Background()) })
			s, err := Every("tick", time.Second, "tick.run")
			require.NoError(t, err)
			enq := &unanswered{be: be, stores: stores}
			start := at("2026-12-04T10:30:00Z").Add(500 * time.Millisecond)
			c := newFakeClock(start)
			began := time.Now()
			done, runErr := runSchedule(t, s, c, NewEmitter(s, enq))
			// 10:30:00 fires at the start; its emit is cut, and the
			// retry waits its back-off.
			retryAt := c.nextSleep(t)
			cut := time.Since(began)
			require.True(t, retryAt.After(start) && retryAt.Before(start.Add(time.Second)), "a back-off: %s", retryAt)
			d := s.Details().(ScheduleDetails)
			require.Contains(t, d.LastError, `schedule "tick": emit 2026-12-04T10:30:00Z`)
			require.Contains(t, d.LastError, queue.ErrOutcomeUnknown.Error())
			require.Contains(t, d.LastError, "attempt timeout of 2s")
			require.GreaterOrEqual(t, cut, MinAttemptTimeout, "the attempt had its timeout")
			require.Less(t, cut, MinAttemptTimeout+time.Second, "the attempt was cut at its timeout")
			c.set(retryAt)
			require.Equal(t, at("2026-12-04T10:30:01Z"), c.nextSleep(t), "Run goes on to the next due time")
			select {
			case <-done:
				t.Fatalf("Run ended: %v", *runErr)
			default:
			}
			left := enq.deadlines()
			require.Len(t, left, 2, "one attempt, one retry")
			for _, l := range left {
				require.Greater(t, l, MinAttemptTimeout-500*time.Millisecond, "each attempt has the timeout")
				require.LessOrEqual(t, l, MinAttemptTimeout)
			}
			d = s.Details().(ScheduleDetails)
			require.Equal(t, at("2026-12-04T10:30:00Z"), d.Last)
			require.Equal(t, int64(1), d.Retries)
			require.Empty(t, d.LastError, "the retry succeeded")
			st, err := be.Stats(context.Background(), "q")
			require.NoError(t, err)
			require.Equal(t, int64(1), st.Ready, "one task for the due time")
			ds, err := be.Lease(context.Background(), "q", 2, time.Minute)
			require.NoError(t, err)
			require.Len(t, ds, 1)
			require.Equal(t, s.Key(at("2026-12-04T10:30:00Z")), ds[0].Task.Key)
			require.NoError(t, be.Ack(context.Background(), ds[0]))
		})
	}
}

// The attempt's timeout starts once the emitter lets the emit through: a
// schedule paused by its supervisor (Supervisor.Pause) waits in Emit,
// as every source does, and its due time's emit is not cut, retried or
// failed meanwhile; it is emitted once on Resume.
func TestSchedulePausedEmitIsNotCut(t *testing.T) {
	be := memory.New(memory.Options{DedupWindow: 2 * time.Minute})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	s, err := Every("tick", time.Second, "tick.run")
	require.NoError(t, err)
	enq := &unanswered{be: be, stores: true, calls: 1} // every call passes through
	em := NewEmitter(s, enq).(*emitter)
	em.gate.set(true)
	start := at("2026-12-04T10:30:00Z").Add(500 * time.Millisecond)
	c := newFakeClock(start)
	runSchedule(t, s, c, em)
	select {
	case at := <-c.sleeping:
		t.Fatalf("the paused emit was cut: the schedule sleeps until %s", at)
	case <-time.After(MinAttemptTimeout + 500*time.Millisecond):
	}
	em.gate.set(false)
	require.Equal(t, at("2026-12-04T10:30:01Z"), c.nextSleep(t))
	d := s.Details().(ScheduleDetails)
	require.Equal(t, at("2026-12-04T10:30:00Z"), d.Last)
	require.Zero(t, d.Retries)
	require.Empty(t, d.LastError)
	require.Len(t, enq.deadlines(), 1)
}

// The attempt's timeout is the time to the next due time, at least
// MinAttemptTimeout and at most a quarter of the grace (so several
// attempts fit in it), unless WithAttemptTimeout sets it.
func TestScheduleAttemptTimeout(t *testing.T) {
	due := at("2026-12-04T10:00:00Z")
	for _, tc := range []struct {
		every time.Duration
		cron  string
		opts  []ScheduleOption
		want  time.Duration
	}{
		{every: time.Second, want: MinAttemptTimeout},
		{every: 5 * time.Second, want: 5 * time.Second},
		{every: time.Minute, want: 15 * time.Second},
		{every: time.Hour, want: 15 * time.Second},
		{every: time.Hour, opts: []ScheduleOption{WithGrace(4 * time.Second)}, want: MinAttemptTimeout},
		{every: time.Hour, opts: []ScheduleOption{WithGrace(20 * time.Second)}, want: 5 * time.Second},
		{cron: "@every 3s", want: 3 * time.Second},
		{cron: "0 10 * * *", want: 15 * time.Second},
		{every: time.Second, opts: []ScheduleOption{WithAttemptTimeout(500 * time.Millisecond)}, want: 500 * time.Millisecond},
		{every: time.Hour, opts: []ScheduleOption{WithAttemptTimeout(time.Minute)}, want: time.Minute},
	} {
		var s *Schedule
		var err error
		if tc.cron != "" {
			s, err = Cron("job", tc.cron, "job.run", tc.opts...)
		} else {
			s, err = Every("job", tc.every, "job.run", tc.opts...)
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, s.attemptTimeout(due), "%v %q", tc.every, tc.cron)
	}
}

// A due time's emit that waits for room in a full queue is cut at its
// attempt timeout and retried within the grace; a queue still full then
// ends Run. What the schedule's details and Run's error say is what an
// operator reads: that the queue is full, not only that a context
// deadline passed (which reads like a backend that did not answer).
func TestScheduleEmitToAFullQueueSaysItIsFull(t *testing.T) {
	be := memory.New(memory.Options{Capacity: 1, DedupWindow: 2 * time.Minute})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	require.NoError(t, be.Enqueue(context.Background(), &task.Task{ID: "filler", Kind: "other", Queue: "q"}))
	s, err := Every("tick", time.Second, "tick.run", WithGrace(10*time.Second))
	require.NoError(t, err)
	enq := &unanswered{be: be, calls: 1} // every call passes through
	start := at("2026-12-04T10:30:00Z").Add(500 * time.Millisecond)
	c := newFakeClock(start)
	done, runErr := runSchedule(t, s, c, NewEmitter(s, enq))
	retryAt := c.nextSleep(t) // the first attempt was cut
	d := s.Details().(ScheduleDetails)
	t.Logf("retrying: %s", d.LastError)
	require.Contains(t, d.LastError, "attempt timeout of 2s")
	require.Contains(t, d.LastError, `queue "q" is full`, "the details say why the attempt waited")

	// The grace used up: the last attempt, cut too, ends Run.
	c.set(retryAt.Add(time.Hour))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run goes on past the grace")
	}
	t.Logf("Run: %v", *runErr)
	require.ErrorIs(t, *runErr, context.DeadlineExceeded)
	require.ErrorContains(t, *runErr, `queue "q" is full`, "Run's error says why")
	st, err := be.Stats(context.Background(), "q")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Ready, "the due time's task was not stored")

	// Restarted (as its supervisor does) with room in the queue: the due
	// time it gave up on is past its grace and does not run; the latest
	// one does.
	ds, err := be.Lease(context.Background(), "q", 1, time.Minute)
	require.NoError(t, err)
	require.NoError(t, be.Ack(context.Background(), ds[0]))
	now := c.Now()
	runSchedule(t, s, c, NewEmitter(s, enq))
	c.nextSleep(t)
	require.Equal(t, now.Truncate(time.Second), s.Details().(ScheduleDetails).Last, "the latest due time runs")
	st, err = be.Stats(context.Background(), "q")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Ready, "one task: the latest due time's")
	ds, err = be.Lease(context.Background(), "q", 1, time.Minute)
	require.NoError(t, err)
	require.Equal(t, s.Key(now.Truncate(time.Second)), ds[0].Task.Key)
	require.NoError(t, be.Ack(context.Background(), ds[0]))
}
