package source

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// flakyEmitter fails its first fails calls with err, then passes the
// tasks on to next.
type flakyEmitter struct {
	mu    sync.Mutex
	fails int // -1: for ever
	err   error
	calls int
	next  Emitter
}

func (f *flakyEmitter) Emit(ctx context.Context, tasks ...*task.Task) error {
	f.mu.Lock()
	f.calls++
	if f.fails != 0 {
		if f.fails > 0 {
			f.fails--
		}
		f.mu.Unlock()
		return f.err
	}
	f.mu.Unlock()
	return f.next.Emit(ctx, tasks...)
}

func (f *flakyEmitter) attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// flakyMarks are MemoryMarks whose first getFails reads and setFails
// writes fail.
type flakyMarks struct {
	MemoryMarks
	mu                 sync.Mutex
	getFails, setFails int
	sets               int
}

var errMarksDown = errors.New("marks bucket: no responders")

func (m *flakyMarks) LastRun(ctx context.Context, schedule string) (time.Time, error) {
	m.mu.Lock()
	if m.getFails > 0 {
		m.getFails--
		m.mu.Unlock()
		return time.Time{}, errMarksDown
	}
	m.mu.Unlock()
	return m.MemoryMarks.LastRun(ctx, schedule)
}

func (m *flakyMarks) SetLastRun(ctx context.Context, schedule string, due time.Time) error {
	m.mu.Lock()
	m.sets++
	if m.setFails > 0 {
		m.setFails--
		m.mu.Unlock()
		return errMarksDown
	}
	m.mu.Unlock()
	return m.MemoryMarks.SetLastRun(ctx, schedule, due)
}

// advanceRetries moves c to each retry the schedule sleeps for, n times,
// and checks each is within (after, deadline].
func advanceRetries(t *testing.T, c *fakeClock, n int, after, deadline time.Time) {
	t.Helper()
	for range n {
		at := c.nextSleep(t)
		require.True(t, at.After(after), "a retry waits: %s", at)
		require.False(t, at.After(deadline), "a retry within the grace: %s", at)
		c.set(at)
		after = at
	}
}

// An emit that fails a few times (a NATS server restarted, a leader
// elected) is retried with back-off within the due time's grace: the due
// time's task is emitted once, late by the outage only, and Run goes on
// to the next due time. Before, the first failure ended Run, and the
// supervisor's restart back-off (1, 2, 4 ... s) silenced the schedule
// for longer than the outage.
func TestScheduleRetriesAFailedEmitWithinTheGrace(t *testing.T) {
	s, err := Every("job", time.Hour, "job.run", WithGrace(time.Minute))
	require.NoError(t, err)
	c := newFakeClock(at("2026-12-04T10:30:00Z"))
	b := newDedup()
	e := &flakyEmitter{fails: 3, err: errors.New("nats: no responders available for request"), next: b}
	done, runErr := runSchedule(t, s, c, e)
	require.Equal(t, at("2026-12-04T11:00:00Z"), c.nextSleep(t))
	missed := s.Details().(ScheduleDetails).Missed // 10:00, before the start
	c.set(at("2026-12-04T11:00:00Z"))
	advanceRetries(t, c, 3, at("2026-12-04T11:00:00Z"), at("2026-12-04T11:01:00Z"))
	require.Equal(t, "job@2026-12-04T11:00:00Z", b.next(t))
	require.Equal(t, at("2026-12-04T12:00:00Z"), c.nextSleep(t), "Run goes on to the next due time")
	select {
	case <-done:
		t.Fatalf("Run ended: %v", *runErr)
	default:
	}
	require.Equal(t, 4, e.attempts())
	b.mu.Lock()
	require.Len(t, b.accepted, 1)
	b.mu.Unlock()
	d := s.Details().(ScheduleDetails)
	require.Equal(t, at("2026-12-04T11:00:00Z"), d.Last)
	require.Equal(t, int64(3), d.Retries)
	require.Empty(t, d.LastError, "the last attempt succeeded")
	require.Equal(t, missed, d.Missed, "11:00 is not missed")
}

// An emit still failing when the grace is used up ends Run with its
// error, as before the retries: the last attempt is made at the due time
// plus the grace, never after it.
func TestScheduleEmitFailingPastTheGraceEndsRun(t *testing.T) {
	s, err := Every("job", time.Hour, "job.run", WithGrace(10*time.Second))
	require.NoError(t, err)
	c := newFakeClock(at("2026-12-04T10:30:00Z"))
	e := &flakyEmitter{fails: -1, err: errors.New("queue down"), next: newDedup()}
	done, runErr := runSchedule(t, s, c, e)
	require.Equal(t, at("2026-12-04T11:00:00Z"), c.nextSleep(t))
	c.set(at("2026-12-04T11:00:00Z"))
	deadline := at("2026-12-04T11:00:10Z")
	var last time.Time
	for ended := false; !ended; {
		select {
		case <-done:
			ended = true
		case at := <-c.sleeping:
			require.False(t, at.After(deadline), "a retry past the grace: %s", at)
			last = at
			c.set(at)
		case <-time.After(10 * time.Second):
			t.Fatal("Run does not end")
		}
	}
	require.ErrorContains(t, *runErr, `schedule "job": emit 2026-12-04T11:00:00Z: queue down`)
	require.Equal(t, deadline, last, "the last attempt is at the end of the grace")
	require.Greater(t, e.attempts(), 3, "attempts with back-off within the grace")
	d := s.Details().(ScheduleDetails)
	require.Equal(t, int64(e.attempts()-1), d.Retries)
	require.Contains(t, d.LastError, "queue down")
}

// An error retrying cannot fix ends Run at once: the task's build failed,
// the task is permanent, invalid or too large, the backend is closed.
func TestScheduleDoesNotRetryWhatRetryingCannotFix(t *testing.T) {
	cases := map[string]struct {
		err   error
		build func(time.Time) (*task.Task, error)
	}{
		"permanent": {err: task.Permanent(errors.New("refused"))},
		"too large": {err: fmt.Errorf("worker: enqueue: %w", queue.ErrTooLarge)},
		"invalid":   {err: fmt.Errorf("worker: enqueue: %w", queue.ErrInvalidTask)},
		"closed":    {err: queue.ErrClosed},
		"build":     {build: func(time.Time) (*task.Task, error) { return nil, errors.New("no template") }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var opts []ScheduleOption
			if tc.build != nil {
				opts = append(opts, WithTask(tc.build))
			}
			s, err := Every("job", time.Hour, "job.run", opts...)
			require.NoError(t, err)
			c := newFakeClock(at("2026-12-04T10:30:00Z"))
			e := &flakyEmitter{fails: -1, err: tc.err, next: newDedup()}
			done, runErr := runSchedule(t, s, c, e)
			c.nextSleep(t)
			c.set(at("2026-12-04T11:00:00Z"))
			select {
			case <-done:
			case at := <-c.sleeping:
				t.Fatalf("the schedule waits to retry until %s", at)
			case <-time.After(10 * time.Second):
				t.Fatal("Run does not end")
			}
			require.Error(t, *runErr)
			if tc.err != nil {
				require.ErrorIs(t, *runErr, tc.err)
				require.Equal(t, 1, e.attempts())
			} else {
				require.Zero(t, e.attempts())
			}
		})
	}
}

// A mark that fails after the task was enqueued is retried alone: the
// task is not emitted again, and the mark follows the run.
func TestScheduleRetriesAFailedMarkWithoutEmittingAgain(t *testing.T) {
	marks := &flakyMarks{setFails: 2}
	s, err := Every("job", time.Hour, "job.run", WithMarks(marks))
	require.NoError(t, err)
	c := newFakeClock(at("2026-12-04T10:30:00Z"))
	b := newDedup()
	done, runErr := runSchedule(t, s, c, b)
	require.Equal(t, at("2026-12-04T11:00:00Z"), c.nextSleep(t))
	c.set(at("2026-12-04T11:00:00Z"))
	require.Equal(t, "job@2026-12-04T11:00:00Z", b.next(t))
	advanceRetries(t, c, 2, at("2026-12-04T11:00:00Z"), at("2026-12-04T11:01:00Z"))
	require.Equal(t, at("2026-12-04T12:00:00Z"), c.nextSleep(t))
	select {
	case <-done:
		t.Fatalf("Run ended: %v", *runErr)
	default:
	}
	require.Empty(t, b.emitted, "emitted once")
	last, err := marks.MemoryMarks.LastRun(context.Background(), "job")
	require.NoError(t, err)
	require.Equal(t, at("2026-12-04T11:00:00Z"), last)
	marks.mu.Lock()
	require.Equal(t, 3, marks.sets)
	marks.mu.Unlock()
}

// Marks that cannot be read at start (the bucket's server restarting)
// are read again with back-off for a grace, and the schedule then starts
// as usual: here it catches up the due time its marks say was missed.
func TestScheduleRetriesReadingItsMarksAtStart(t *testing.T) {
	marks := &flakyMarks{getFails: 2}
	require.NoError(t, marks.MemoryMarks.SetLastRun(context.Background(), "job", at("2026-12-04T09:00:00Z")))
	s, err := Every("job", time.Hour, "job.run", OnMissed(CatchUpOnce), WithMarks(marks))
	require.NoError(t, err)
	start := at("2026-12-04T10:30:00Z")
	c := newFakeClock(start)
	b := newDedup()
	runSchedule(t, s, c, b)
	advanceRetries(t, c, 2, start, start.Add(time.Minute))
	require.Equal(t, "job@2026-12-04T10:00:00Z", b.next(t))
	require.Equal(t, at("2026-12-04T11:00:00Z"), c.nextSleep(t))
	require.Equal(t, int64(2), s.Details().(ScheduleDetails).Retries)
}

// outcomeLost is an Enqueuer that stores tasks in a backend and, for its
// first call, reports the answer lost (a publish whose ack timed out).
type outcomeLost struct {
	be   *memory.Backend
	mu   sync.Mutex
	lost bool
}

func (o *outcomeLost) Enqueue(ctx context.Context, tasks ...*task.Task) error {
	for _, t := range tasks {
		t.Queue = "q"
	}
	if err := o.be.Enqueue(ctx, tasks...); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.lost {
		o.lost = true
		return fmt.Errorf("publish: ack timed out: %w", queue.ErrOutcomeUnknown)
	}
	return nil
}

// An emit whose answer was lost after the backend stored the task is
// retried: the copy, with the due time's key, is dropped by the backend,
// and the due time runs once.
func TestScheduleRetryAfterALostAnswerStoresOneTask(t *testing.T) {
	be := memory.New(memory.Options{DedupWindow: 2 * time.Minute})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	s, err := Every("job", time.Hour, "job.run")
	require.NoError(t, err)
	enq := &outcomeLost{be: be}
	c := newFakeClock(at("2026-12-04T10:30:00Z"))
	done, runErr := runSchedule(t, s, c, NewEmitter(s, enq))
	require.Equal(t, at("2026-12-04T11:00:00Z"), c.nextSleep(t))
	c.set(at("2026-12-04T11:00:00Z"))
	advanceRetries(t, c, 1, at("2026-12-04T11:00:00Z"), at("2026-12-04T11:01:00Z"))
	require.Equal(t, at("2026-12-04T12:00:00Z"), c.nextSleep(t))
	select {
	case <-done:
		t.Fatalf("Run ended: %v", *runErr)
	default:
	}
	st, err := be.Stats(context.Background(), "q")
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Ready, "one task for the due time")
	ds, err := be.Lease(context.Background(), "q", 2, time.Minute)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, s.Key(at("2026-12-04T11:00:00Z")), ds[0].Task.Key)
	require.NoError(t, be.Ack(context.Background(), ds[0]))
}
