package source

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// backend is a queue backend's Enqueue and FindTasks.
type backend interface {
	task.Enqueuer
	queue.TaskFinder
}

// lostAnswers is an Enqueuer in front of a backend whose answers
// are lost while lose is set, as a publish's when the NATS server leading
// the work stream stops with it in flight, for longer than a grace: with
// stores, the server stored the task (its copies are dropped by the key);
// without, it was lost with the server. Its finder looks tasks up in the
// backend (the server is back) or fails (it is not).
type lostAnswers struct {
	be     backend
	mem    *memory.Backend // be, when it is a memory backend
	stores bool

	mu       sync.Mutex
	lose     bool
	findDown bool
	calls    int
}

func (l *lostAnswers) Enqueue(ctx context.Context, tasks ...*task.Task) error {
	for _, t := range tasks {
		t.Queue = "q"
	}
	l.mu.Lock()
	l.calls++
	lose := l.lose
	l.mu.Unlock()
	if !lose {
		return l.be.Enqueue(ctx, tasks...)
	}
	if l.stores {
		if err := l.be.Enqueue(ctx, tasks...); err != nil {
			return err
		}
	}
	return fmt.Errorf("publish ack: %w (%w)", context.DeadlineExceeded, queue.ErrOutcomeUnknown)
}

func (l *lostAnswers) set(lose, findDown bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lose, l.findDown = lose, findDown
}

func (l *lostAnswers) attempts() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}

// finder is l as a queue.TaskFinder.
func (l *lostAnswers) finder() *finding { return &finding{l} }

type finding struct{ *lostAnswers }

func (f *finding) FindTasks(ctx context.Context, q string, lk queue.TaskLookup) (queue.TaskSearch, error) {
	f.mu.Lock()
	down := f.findDown
	f.mu.Unlock()
	if down {
		return queue.TaskSearch{}, errors.New("nats: no responders available for request")
	}
	return f.be.FindTasks(ctx, q, lk)
}

// startRun runs s on c with e until stop, which returns Run's error.
func startRun(t *testing.T, s *Schedule, c *fakeClock, e Emitter) (done <-chan struct{}, stop func() error) {
	t.Helper()
	s.clock = c
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	var err error
	go func() { defer close(ch); err = s.Run(ctx, e) }()
	stop = func() error {
		cancel()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("Run does not return after cancel")
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return ch, stop
}

// retryUntilGivenUp moves c through the retries of an emit until
// deadline, and returns the time the schedule sleeps for after it (the
// next due time), or the zero time when Run ended.
func retryUntilGivenUp(t *testing.T, c *fakeClock, done <-chan struct{}, deadline time.Time) time.Time {
	t.Helper()
	for {
		select {
		case <-done:
			return time.Time{}
		case at := <-c.sleeping:
			if at.After(deadline) {
				return at
			}
			c.set(at)
		case <-time.After(10 * time.Second):
			t.Fatal("the schedule neither sleeps nor ends")
		}
	}
}

// queued returns the keys of the tasks stored on q (leased and acked).
func queued(t *testing.T, be *memory.Backend) []string {
	t.Helper()
	st, err := be.Stats(context.Background(), "q")
	require.NoError(t, err)
	if st.Ready == 0 {
		return nil
	}
	ds, err := be.Lease(context.Background(), "q", 10, time.Minute)
	require.NoError(t, err)
	var keys []string
	for _, d := range ds {
		keys = append(keys, d.Task.Key)
		require.NoError(t, be.Ack(context.Background(), d))
	}
	return keys
}

func newLost(t *testing.T, stores bool) *lostAnswers {
	be := memory.New(memory.Options{DedupWindow: 2 * time.Minute})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	return &lostAnswers{be: be, mem: be, stores: stores, lose: true}
}

func markOf(t *testing.T, m Marks) time.Time {
	t.Helper()
	last, err := m.LastRun(context.Background(), "job")
	require.NoError(t, err)
	return last
}

// An emit whose every answer was lost until the grace passed, while the
// backend stored the task: the schedule looks the due time's key up, finds
// the task, and reports the due time as run (Last, the mark) and goes on;
// the next Run does not count it missed. Before, Run ended with the error,
// the mark was not written, and the next Run counted the due time missed
// although its task was stored and ran.
func TestScheduleFindsTheTaskOfAnEmitGivenUpWithItsOutcomeUnknown(t *testing.T) {
	marks := &MemoryMarks{}
	require.NoError(t, marks.SetLastRun(context.Background(), "job", at("2026-12-04T10:00:00Z")))
	s, err := Every("job", time.Hour, "job.run", WithGrace(10*time.Second), WithMarks(marks))
	require.NoError(t, err)
	enq := newLost(t, true)
	c := newFakeClock(at("2026-12-04T10:30:00Z"))
	done, stop := startRun(t, s, c, NewEmitter(s, enq.finder()))
	require.Equal(t, at("2026-12-04T11:00:00Z"), c.nextSleep(t))
	c.set(at("2026-12-04T11:00:00Z"))
	next := retryUntilGivenUp(t, c, done, at("2026-12-04T11:00:10Z"))
	require.Equal(t, at("2026-12-04T12:00:00Z"), next, "Run goes on to the next due time")
	require.Greater(t, enq.attempts(), 2, "retried within the grace")
	d := s.Details().(ScheduleDetails)
	require.Equal(t, at("2026-12-04T11:00:00Z"), d.Last, "the task was stored: the due time ran")
	require.Zero(t, d.Missed)
	require.Zero(t, d.Unknown)
	require.Empty(t, d.LastError)
	require.Equal(t, at("2026-12-04T11:00:00Z"), markOf(t, marks))
	require.NoError(t, stop())

	// The next Run, past 11:00's grace, neither counts nor runs it.
	enq.set(false, false)
	c = newFakeClock(at("2026-12-04T11:30:00Z"))
	startRun(t, s, c, NewEmitter(s, enq.finder()))
	require.Equal(t, at("2026-12-04T12:00:00Z"), c.nextSleep(t))
	d = s.Details().(ScheduleDetails)
	require.Zero(t, d.Missed)
	require.Zero(t, d.Unknown)
	require.Equal(t, []string{"job@2026-12-04T11:00:00Z"}, queued(t, enq.mem), "one task for 11:00")
}

// An emit whose every answer was lost until the grace passed, with no
// lookup that finds the task (the lookup fails, the emitter cannot look
// up, or the task was not stored), ends Run and counts the due time as
// unknown: not missed, not run. What the next Run does with it: a lookup
// that finds it makes it run (Last, the mark); CatchUpOnce emits it again,
// the copy dropped by the key when the task was stored; SkipMissed leaves
// it unknown. Before, the due time counted as missed at the next Run
// (SkipMissed), whether or not its task was stored and ran.
func TestScheduleCountsAnEmitGivenUpWithItsOutcomeUnknownAsUnknown(t *testing.T) {
	type finderKind int
	const (
		noFinder finderKind = iota
		finderDown
		finderUp
	)
	cases := []struct {
		name      string
		stores    bool
		missed    Missed
		first     finderKind // the emitter's lookups in the Run that gives the due time up
		nextFind  bool       // the next Run's emitter can look up
		wantLast  bool       // the next Run reports 11:00 as run
		wantTasks []string
	}{
		{name: "stored, the lookup fails, found at the next Run", stores: true, first: finderDown, nextFind: true,
			wantLast: true, wantTasks: []string{"job@2026-12-04T11:00:00Z"}},
		{name: "stored, no lookup, caught up once: the copy is dropped", stores: true, missed: CatchUpOnce,
			wantLast: true, wantTasks: []string{"job@2026-12-04T11:00:00Z"}},
		{name: "stored, no lookup, skipped: stays unknown", stores: true, wantTasks: []string{"job@2026-12-04T11:00:00Z"}},
		{name: "not stored, not found: stays unknown", first: finderUp, nextFind: true},
		{name: "not stored, caught up once", missed: CatchUpOnce, first: finderUp, nextFind: true,
			wantLast: true, wantTasks: []string{"job@2026-12-04T11:00:00Z"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			marks := &MemoryMarks{}
			require.NoError(t, marks.SetLastRun(context.Background(), "job", at("2026-12-04T10:00:00Z")))
			s, err := Every("job", time.Hour, "job.run", WithGrace(10*time.Second), WithMarks(marks), OnMissed(tc.missed))
			require.NoError(t, err)
			enq := newLost(t, tc.stores)
			var e Emitter = NewEmitter(s, enq)
			if tc.first != noFinder {
				enq.set(true, tc.first == finderDown)
				e = NewEmitter(s, enq.finder())
			}
			c := newFakeClock(at("2026-12-04T10:30:00Z"))
			done, stop := startRun(t, s, c, e)
			require.Equal(t, at("2026-12-04T11:00:00Z"), c.nextSleep(t))
			c.set(at("2026-12-04T11:00:00Z"))
			require.True(t, retryUntilGivenUp(t, c, done, at("2026-12-04T11:00:10Z")).IsZero(), "Run ends")
			err = stop()
			require.ErrorIs(t, err, queue.ErrOutcomeUnknown)
			assert.ErrorContains(t, err, "counts as unknown, not missed")
			d := s.Details().(ScheduleDetails)
			assert.Zero(t, d.Last, "not known to have run")
			assert.Zero(t, d.Missed, "not known to be missed")
			assert.Equal(t, int64(1), d.Unknown, "the outcome is unknown")
			assert.Equal(t, at("2026-12-04T10:00:00Z"), markOf(t, marks))

			// The next Run, past 11:00's grace, the backend answering.
			enq.set(false, false)
			e = NewEmitter(s, enq)
			if tc.nextFind {
				e = NewEmitter(s, enq.finder())
			}
			c = newFakeClock(at("2026-12-04T11:30:00Z"))
			startRun(t, s, c, e)
			require.Equal(t, at("2026-12-04T12:00:00Z"), c.nextSleep(t))
			d = s.Details().(ScheduleDetails)
			assert.Zero(t, d.Missed, "the next Run does not count 11:00 missed")
			if tc.wantLast {
				assert.Equal(t, at("2026-12-04T11:00:00Z"), d.Last, "11:00 ran")
				assert.Equal(t, at("2026-12-04T11:00:00Z"), markOf(t, marks))
				assert.Zero(t, d.Unknown)
			} else {
				assert.Zero(t, d.Last)
				assert.Equal(t, at("2026-12-04T10:00:00Z"), markOf(t, marks))
				assert.Equal(t, int64(1), d.Unknown, "11:00 stays unknown")
			}
			assert.Equal(t, tc.wantTasks, queued(t, enq.mem))

			// 12:00 runs; an unknown 11:00 stays counted as unknown.
			c.set(at("2026-12-04T12:00:00Z"))
			require.Equal(t, at("2026-12-04T13:00:00Z"), c.nextSleep(t))
			d = s.Details().(ScheduleDetails)
			assert.Equal(t, at("2026-12-04T12:00:00Z"), d.Last)
			assert.Zero(t, d.Missed)
			unknown := int64(1)
			if tc.wantLast {
				unknown = 0
			}
			assert.Equal(t, unknown, d.Unknown)
		})
	}
}

// The opposite: an emit given up without an attempt whose outcome was
// unknown (the backend refused each, so none stored the task) is not
// reported as run (no Last, no mark) nor as unknown, and the next Run
// counts it missed.
func TestScheduleEmitGivenUpWithoutAnUnknownOutcomeIsNotRun(t *testing.T) {
	marks := &MemoryMarks{}
	require.NoError(t, marks.SetLastRun(context.Background(), "job", at("2026-12-04T10:00:00Z")))
	s, err := Every("job", time.Hour, "job.run", WithGrace(10*time.Second), WithMarks(marks))
	require.NoError(t, err)
	b := newDedup()
	e := &flakyEmitter{fails: -1, err: errors.New("nats: no responders available for request"), next: b}
	c := newFakeClock(at("2026-12-04T10:30:00Z"))
	done, stop := startRun(t, s, c, e)
	require.Equal(t, at("2026-12-04T11:00:00Z"), c.nextSleep(t))
	c.set(at("2026-12-04T11:00:00Z"))
	require.True(t, retryUntilGivenUp(t, c, done, at("2026-12-04T11:00:10Z")).IsZero(), "Run ends")
	require.ErrorContains(t, stop(), "no responders")
	d := s.Details().(ScheduleDetails)
	require.Zero(t, d.Last)
	require.Zero(t, d.Unknown)
	require.Equal(t, at("2026-12-04T10:00:00Z"), markOf(t, marks))

	c = newFakeClock(at("2026-12-04T11:30:00Z"))
	startRun(t, s, c, b)
	require.Equal(t, at("2026-12-04T12:00:00Z"), c.nextSleep(t))
	d = s.Details().(ScheduleDetails)
	require.Equal(t, int64(1), d.Missed)
	require.Zero(t, d.Unknown)
	require.Zero(t, d.Last)
	require.Empty(t, b.accepted)
}

// cancelAfter is an Emitter that cancels the run (its host lost the
// lease, or stops) once an Emit returned, and looks tasks up through its
// Emitter.
type cancelAfter struct {
	Emitter
	cancel context.CancelFunc
}

func (e *cancelAfter) Emit(ctx context.Context, tasks ...*task.Task) error {
	err := e.Emitter.Emit(ctx, tasks...)
	e.cancel()
	return err
}

func (e *cancelAfter) FindTasks(ctx context.Context, q string, l queue.TaskLookup) (queue.TaskSearch, error) {
	return e.Emitter.(queue.TaskFinder).FindTasks(ctx, q, l)
}

// A run stopped while its emit's outcome is unknown looks the key up all
// the same: the task found, the due time is marked, so that the host that
// takes the schedule over neither counts it missed nor runs it again.
func TestScheduleStoppedWithAnUnknownOutcomeMarksAStoredTask(t *testing.T) {
	marks := &ctxMarks{}
	s, err := Every("job", time.Hour, "job.run", OnMissed(CatchUpOnce), WithMarks(marks))
	require.NoError(t, err)
	enq := newLost(t, true)
	s.clock = newFakeClock(at("2026-12-04T10:30:00Z"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, s.Run(ctx, &cancelAfter{Emitter: NewEmitter(s, enq.finder()), cancel: cancel}))
	require.Equal(t, 1, enq.attempts())
	require.Equal(t, at("2026-12-04T10:00:00Z"), markOf(t, marks), "caught up at the start (no mark), stored")
	d := s.Details().(ScheduleDetails)
	require.Equal(t, at("2026-12-04T10:00:00Z"), d.Last)
	require.Zero(t, d.Unknown)
}

// partFinder is an Emitter whose lookups find the task in the place
// searched first and then fail (a backend whose work stream answered and
// whose dead letters did not).
type partFinder struct {
	Emitter
}

func (partFinder) FindTasks(_ context.Context, q string, l queue.TaskLookup) (queue.TaskSearch, error) {
	return queue.TaskSearch{Found: []queue.FoundTask{{State: queue.StateReady, Task: &task.Task{Key: l.Key, Queue: q}}}},
		errors.New("dead letters: nats: no responders available for request")
}

// A lookup that found the due time's task before a later part of it
// failed found the task: the due time ran. It counted as unknown.
func TestScheduleLookupThatFoundTheTaskBeforeFailingFoundIt(t *testing.T) {
	s, err := Every("job", time.Hour, "job.run")
	require.NoError(t, err)
	found, err := s.lookUp(context.Background(), partFinder{}, "q", at("2026-12-04T10:00:00Z"))
	require.True(t, found, "found: %v", err)
}

// A Run started again (its supervisor restarts it after an error, a
// lease taken back) does not count again the due times an earlier Run
// counted missed: they are missed once. Each start counted every due
// time after the mark again.
func TestScheduleRunAgainDoesNotCountMissedTwice(t *testing.T) {
	for _, withMarks := range []bool{true, false} {
		t.Run(fmt.Sprintf("marks=%v", withMarks), func(t *testing.T) {
			var opts []ScheduleOption
			opts = append(opts, WithGrace(10*time.Second))
			if withMarks {
				marks := &MemoryMarks{}
				require.NoError(t, marks.SetLastRun(context.Background(), "job", at("2026-12-04T10:00:00Z")))
				opts = append(opts, WithMarks(marks))
			}
			s, err := Every("job", time.Hour, "job.run", opts...)
			require.NoError(t, err)
			enq := newLost(t, true)
			enq.set(false, false)
			want := int64(2) // 11:00 and 12:00
			if !withMarks {
				want = 1 // 12:00: without marks, only the latest is known not run
			}
			c := newFakeClock(at("2026-12-04T12:30:00Z"))
			_, stop := startRun(t, s, c, NewEmitter(s, enq.finder()))
			require.Equal(t, at("2026-12-04T13:00:00Z"), c.nextSleep(t))
			require.NoError(t, stop())
			require.Equal(t, want, s.Details().(ScheduleDetails).Missed)

			c = newFakeClock(at("2026-12-04T12:40:00Z"))
			_, stop = startRun(t, s, c, NewEmitter(s, enq.finder()))
			require.Equal(t, at("2026-12-04T13:00:00Z"), c.nextSleep(t))
			require.NoError(t, stop())
			require.Equal(t, want, s.Details().(ScheduleDetails).Missed, "counted once")
			require.Empty(t, queued(t, enq.mem))
		})
	}
}

// Two due times given up in turn with their outcome unknown, both stored:
// the next Run that can look them up finds both, and neither counts as
// unknown any more. Before, the second replaced the first, which stayed
// counted in Unknown for ever, never looked up again.
func TestScheduleKeepsEveryUnknownDueTimeUntilSettled(t *testing.T) {
	marks := &MemoryMarks{}
	require.NoError(t, marks.SetLastRun(context.Background(), "job", at("2026-12-04T10:00:00Z")))
	s, err := Every("job", time.Hour, "job.run", WithGrace(10*time.Second), WithMarks(marks))
	require.NoError(t, err)
	enq := newLost(t, true)
	enq.set(true, true) // answers lost, lookups fail
	giveUp := func(start, due string) {
		t.Helper()
		c := newFakeClock(at(start))
		done, stop := startRun(t, s, c, NewEmitter(s, enq.finder()))
		require.Equal(t, at(due), c.nextSleep(t))
		c.set(at(due))
		require.True(t, retryUntilGivenUp(t, c, done, at(due).Add(10*time.Second)).IsZero(), "Run ends")
		require.ErrorIs(t, stop(), queue.ErrOutcomeUnknown)
	}
	giveUp("2026-12-04T10:30:00Z", "2026-12-04T11:00:00Z")
	require.Equal(t, int64(1), s.Details().(ScheduleDetails).Unknown)
	giveUp("2026-12-04T11:30:00Z", "2026-12-04T12:00:00Z")
	d := s.Details().(ScheduleDetails)
	require.Equal(t, int64(2), d.Unknown, "11:00 and 12:00")
	require.Zero(t, d.Missed)
	require.Zero(t, d.Last)

	// The backend back: the next Run finds both.
	enq.set(false, false)
	c := newFakeClock(at("2026-12-04T12:30:00Z"))
	startRun(t, s, c, NewEmitter(s, enq.finder()))
	require.Equal(t, at("2026-12-04T13:00:00Z"), c.nextSleep(t))
	d = s.Details().(ScheduleDetails)
	assert.Zero(t, d.Unknown, "both found stored")
	assert.Zero(t, d.Missed)
	assert.Equal(t, at("2026-12-04T12:00:00Z"), d.Last)
	assert.Equal(t, at("2026-12-04T12:00:00Z"), markOf(t, marks))
	assert.Equal(t, []string{"job@2026-12-04T11:00:00Z", "job@2026-12-04T12:00:00Z"}, queued(t, enq.mem))
}

// The unknown due times kept are bounded: past maxUnknown the earliest is
// no longer kept (it stays counted), and a due time given up again is
// kept and counted once.
func TestScheduleUnknownDueTimesAreBounded(t *testing.T) {
	s, err := Every("job", time.Hour, "job.run")
	require.NoError(t, err)
	base := at("2026-12-04T00:00:00Z")
	errLost := fmt.Errorf("publish ack: %w", queue.ErrOutcomeUnknown)
	for i := range maxUnknown + 3 {
		// An emitter that cannot look up: each due time counts as unknown.
		require.ErrorIs(t, s.givenUp(context.Background(), newDedup(), base.Add(time.Duration(i)*time.Hour), "q", errLost), queue.ErrOutcomeUnknown)
	}
	require.ErrorIs(t, s.givenUp(context.Background(), newDedup(), base.Add(5*time.Hour), "q", errLost), queue.ErrOutcomeUnknown)
	require.Equal(t, int64(maxUnknown+3), s.Details().(ScheduleDetails).Unknown, "each counted once")
	s.mu.Lock()
	require.Len(t, s.unknown, maxUnknown)
	require.Equal(t, base.Add(3*time.Hour), s.unknown[0].due, "the earliest dropped")
	s.mu.Unlock()
	s.ran(base.Add(5 * time.Hour))
	require.Equal(t, int64(maxUnknown+2), s.Details().(ScheduleDetails).Unknown, "settled by its emit")
	s.ran(base.Add(1 * time.Hour))
	require.Equal(t, int64(maxUnknown+2), s.Details().(ScheduleDetails).Unknown, "dropped: not settled")
	require.Equal(t, base.Add(5*time.Hour), s.Details().(ScheduleDetails).Last, "Last does not go back")
}

// slowFinder is an Emitter whose lookups each take step on the
// schedule's clock c and find nothing (a backend slow to read through a
// long work stream).
type slowFinder struct {
	*dedupBackend
	c       *fakeClock
	step    time.Duration
	mu      sync.Mutex
	lookups int
}

func (f *slowFinder) FindTasks(context.Context, string, queue.TaskLookup) (queue.TaskSearch, error) {
	f.mu.Lock()
	f.lookups++
	f.mu.Unlock()
	f.c.set(f.c.Now().Add(f.step))
	return queue.TaskSearch{}, nil
}

// The lookups at a start of the due times kept unknown take at most a
// quarter of the grace: a due time that passed shortly before the start
// fires within its grace, the unknown due times not looked up left to the
// next start. Before, the ten lookups of 5 s each took 50 s, the due time
// passed 20 s before the start was then 70 s late, past its 60 s grace,
// and counted missed, not run.
func TestScheduleLookupsAtStartLeaveTheGraceToTheDueTime(t *testing.T) {
	marks := &MemoryMarks{}
	require.NoError(t, marks.SetLastRun(context.Background(), "job", at("2026-12-04T09:00:00Z")))
	s, err := Every("job", time.Hour, "job.run", WithGrace(time.Minute), WithMarks(marks))
	require.NoError(t, err)
	s.mu.Lock()
	for i := range 10 {
		due := at("2026-12-03T00:00:00Z").Add(time.Duration(i) * time.Hour)
		s.keepUnknown(unknownDue{due: due, queue: "q"})
		s.countedThrough(due)
	}
	s.mu.Unlock()
	c := newFakeClock(at("2026-12-04T10:00:20Z"))
	e := &slowFinder{dedupBackend: newDedup(), c: c, step: 5 * time.Second}
	runSchedule(t, s, c, e)
	require.Equal(t, "job@2026-12-04T10:00:00Z", e.next(t), "the due time 20 s before the start fires")
	require.Equal(t, at("2026-12-04T11:00:00Z"), c.nextSleep(t))
	d := s.Details().(ScheduleDetails)
	assert.Zero(t, d.Missed)
	assert.Equal(t, int64(10), d.Unknown, "none found")
	e.mu.Lock()
	assert.Equal(t, 3, e.lookups, "15 s of lookups: the rest at the next start")
	e.mu.Unlock()
}
