package source

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/plba/plba/platform/task"
)

// Headers a scheduled task carries.
const (
	// HeaderSchedule names the schedule that emitted the task.
	HeaderSchedule = "plba-schedule"
	// HeaderScheduledAt is the due time the task runs for (RFC 3339, UTC).
	HeaderScheduledAt = "plba-scheduled-at"
)

// Missed says what a schedule does with due times that passed while no
// host ran it (the hosts were down, or the machine slept).
type Missed int

const (
	// SkipMissed forgets them: the schedule waits for its next due time.
	SkipMissed Missed = iota
	// CatchUpOnce runs the latest of them once, at once, then waits for
	// the next due time. Which due time ran last is read from the
	// schedule's Marks.
	CatchUpOnce
)

// Marks keep the last due time each schedule emitted, so that CatchUpOnce
// knows what was missed. A schedule writes its mark after each due time is
// enqueued and reads it when it starts.
type Marks interface {
	// LastRun returns the last due time recorded for schedule, or the
	// zero time when there is none.
	LastRun(ctx context.Context, schedule string) (time.Time, error)
	// SetLastRun records due as schedule's last due time.
	SetLastRun(ctx context.Context, schedule string, due time.Time) error
}

// Schedule is a Source that emits one task per due time of a fixed
// interval (Every) or a cron expression (Cron), so that a periodic job is a
// task like any other: queued, retried, dead-lettered, observed.
//
// Once per cluster: every host may run the same schedule. Due times are
// computed, not counted from the start (Every's are the multiples of the
// interval since the Unix epoch; Cron's are the expression's), so every
// host derives the same ones, and each due time's task has the key
// "<name>@<due time, RFC 3339 UTC>": the backend accepts it once per
// de-duplication window (JetStream's duplicate_window, two minutes by
// default). The runtime runs a schedule wrapped in Exclusive (it is an
// Exclusiver), so only one host runs it at a
// time and the key covers the hand-over.
//
// Missed due times: the schedule emits at most one task each time it
// wakes, for the latest due time that has come. A due time reached at most
// the grace late (WithGrace, default DefaultGrace) fires; one reached
// later is missed (no host ran the schedule then, the emit of an earlier
// due time took its grace, the machine slept), and so are the due times before it that the
// schedule never reached. The Missed policy decides: SkipMissed (default)
// drops them and waits for the next due time; CatchUpOnce fires the latest
// of them once. Due times are wall-clock times: the schedule reads the
// wall clock at least every second while it waits, so a clock set forward
// (an NTP step) or a machine that slept before a due time does not make
// that due time late; a due time the clock jumped over, or that came
// while the machine slept, is late by as much.
//
// The last run: at start the schedule looks at the latest due time that
// has passed. What it knows of earlier runs comes from its Marks
// (WithMarks): a due time at or before the mark already ran, and is not
// run again even when it lies ahead of this host's clock (the host that
// ran it had a clock ahead, or this one was set back); nor is a due time
// this schedule emitted itself before (a Run again after a lost lease or
// a restart by the supervisor), whatever its marks say (it is written
// back to them, for a host that takes the schedule over). Without
// marks it derives the answer from the clock and the policy: with
// SkipMissed the latest passed due time fires only within the grace (and
// its key drops it if a host ran it before, since the grace is under the
// de-duplication window); with CatchUpOnce it fires at every start, since
// nothing says it ran. Give durable Marks shared by the hosts
// (lease.OpenMarks: a JetStream key-value bucket) to catch up exactly what
// was missed across restarts; MemoryMarks survive only a restart of the
// source by its supervisor.
type Schedule struct {
	name    string
	spec    string
	kind    string
	times   dueTimes
	loc     *time.Location
	missed  Missed
	marks   Marks
	build   func(due time.Time) (*task.Task, error)
	grace   time.Duration
	attempt time.Duration // WithAttemptTimeout's; 0: derived (attemptTimeout)
	clock   clock

	mu         sync.Mutex
	next, last time.Time
	nextTry    time.Duration // the attempt timeout of next's emit
	missedRuns int64
	// unknown holds the due times whose emit was given up with their
	// outcome unknown, earliest first, until each is settled (at most
	// maxUnknown of them); unknownRuns counts those not settled
	// (ScheduleDetails.Unknown).
	unknown     []unknownDue
	unknownRuns int64
	// counted is the latest due time counted (run, missed or unknown):
	// a Run started again does not count those before it again.
	counted time.Time
	retries int64
	lastErr string // of the last failed attempt, until one succeeds
}

var (
	_ Source     = (*Schedule)(nil)
	_ Detailer   = (*Schedule)(nil)
	_ Exclusiver = (*Schedule)(nil)
	_ MarksUser  = (*Schedule)(nil)
)

// ScheduleOption configures a Schedule.
type ScheduleOption func(*Schedule)

// InLocation evaluates the schedule in loc (a cron expression's hours are
// loc's wall clock, with its daylight saving time: a time at fixed hours
// runs once when the clocks go back, and at the change when they skip
// it). Default time.UTC.
func InLocation(loc *time.Location) ScheduleOption {
	return func(s *Schedule) {
		if loc != nil {
			s.loc = loc
		}
	}
}

// OnMissed sets the policy for missed due times. Default SkipMissed.
func OnMissed(m Missed) ScheduleOption { return func(s *Schedule) { s.missed = m } }

// DefaultGrace is how late a due time may fire before it counts as missed:
// under JetStream's default de-duplication window (two minutes), so a
// due time fired again by a host that restarted within the grace is
// dropped by its key.
const DefaultGrace = time.Minute

// WithGrace sets how late a due time may fire before it counts as missed
// (the host was down, the emit of an earlier due time took long, the
// machine slept), and how long a due time's emit is retried (see Run).
// Default DefaultGrace. Keep it under the backend's de-duplication window.
func WithGrace(d time.Duration) ScheduleOption {
	return func(s *Schedule) {
		if d > 0 {
			s.grace = d
		}
	}
}

// WithMarks keeps the last due time in m (see Marks). Default: none.
func WithMarks(m Marks) ScheduleOption { return func(s *Schedule) { s.marks = m } }

// WithTask makes each due time's task with build instead of an empty
// task of the schedule's kind. The schedule sets the task's Key and the
// HeaderSchedule and HeaderScheduledAt headers on what build returns;
// build must not return nil.
func WithTask(build func(due time.Time) (*task.Task, error)) ScheduleOption {
	return func(s *Schedule) { s.build = build }
}

// Every returns a schedule named name that emits a task of kind at every
// multiple of interval since the Unix epoch (interval one hour: on the
// hour, UTC). It fails with ErrBadSchedule for an interval under one
// second or an empty name or kind.
func Every(name string, interval time.Duration, kind string, opts ...ScheduleOption) (*Schedule, error) {
	if interval < time.Second {
		return nil, fmt.Errorf("%w: %q: interval %v is under one second", ErrBadSchedule, name, interval)
	}
	return newSchedule(name, "every "+interval.String(), kind, every{d: interval}, opts)
}

// Cron returns a schedule named name that emits a task of kind at each
// time the cron expression spec names ("0 * * * *": on the hour; five
// fields, or @hourly, @daily, @weekly, @monthly, @yearly, @every <d>),
// evaluated in InLocation's time zone. It fails with ErrBadSchedule for an
// expression it cannot parse or an empty name or kind.
func Cron(name, spec, kind string, opts ...ScheduleOption) (*Schedule, error) {
	s, err := newSchedule(name, spec, kind, nil, opts)
	if err != nil {
		return nil, err
	}
	if s.times, err = parseCron(spec, s.loc); err != nil {
		return nil, fmt.Errorf("schedule %q: %w", name, err)
	}
	return s, nil
}

func newSchedule(name, spec, kind string, times dueTimes, opts []ScheduleOption) (*Schedule, error) {
	if name == "" || kind == "" {
		return nil, fmt.Errorf("%w: a schedule needs a name and a task kind", ErrBadSchedule)
	}
	s := &Schedule{name: name, spec: spec, kind: kind, times: times, loc: time.UTC, grace: DefaultGrace, clock: realClock{}}
	for _, o := range opts {
		o(s)
	}
	if s.missed != SkipMissed && s.missed != CatchUpOnce {
		return nil, fmt.Errorf("%w: %q: unknown missed policy %d", ErrBadSchedule, name, s.missed)
	}
	return s, nil
}

// Name returns the schedule's name.
func (s *Schedule) Name() string { return s.name }

// Exclusive reports true: the runtime runs a schedule on one host of the
// cluster at a time (under a lease named after it), and its keys cover a
// hand-over.
func (s *Schedule) Exclusive() bool { return true }

// UseMarks keeps the last due time in m unless the schedule has marks
// (WithMarks) already. The runtime calls it before the start with the
// host's marks: shared by the hosts on JetStream.
func (s *Schedule) UseMarks(m Marks) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.marks == nil {
		s.marks = m
	}
}

// markTimeout bounds the write of a due time's mark after its task was
// enqueued.
const markTimeout = 2 * time.Second

// Key returns the de-duplication key of due's task.
func (s *Schedule) Key(due time.Time) string {
	return s.name + "@" + due.UTC().Format(time.RFC3339Nano)
}

// Run emits each due time's task until ctx ends. Run returns nil when
// the schedule has no further due time.
//
// A failed Emit or Marks call is tried again, with back-off (100ms
// doubling up to 5s) on the schedule's clock, within the due time's grace:
// a short outage (a NATS server restarted, a leader elected) delays the
// due time's task, it does not end Run, and the cadence is kept. The last
// attempt is made at the due time plus the grace (a missed due time
// caught up has a grace from when it is fired). A retried Emit sends a
// copy of the same task, with the due time's key, so a task stored by an
// attempt whose answer was lost is not stored twice; a failed mark is
// retried alone, the task is not emitted again.
//
// Each attempt at an emit waits for the backend at most its attempt
// timeout (ScheduleDetails.AttemptTimeout): WithAttemptTimeout's, else
// the time to the due time after it, at least MinAttemptTimeout (2s) and
// at most a quarter of the grace (2s for a schedule every second, 15s
// for an hourly one with the default grace). An attempt without an
// answer by then (the NATS server leading the work stream stopped with
// the publish in flight: JetStream would wait out its publish_timeout,
// 10s by default, while a frequent schedule's due times pass) is cut
// (JetStream reports a publish it sent and did not hear back of as
// queue.ErrOutcomeUnknown) and retried like any failed attempt, with the
// due time's key, so the task is stored once whichever attempt stored
// it. The runtime's emitter
// (NewEmitter) applies the timeout from when it lets the emit through: a
// schedule paused by its supervisor waits in Emit uncut (another Emitter
// gets no timeout). It covers a wait for room in a full queue too: the
// grace bounds how late a due time's task is enqueued, and a queue full
// for longer ends Run like an outage.
//
// The read of the marks at start, and the write-back of the due time
// this schedule emitted last, are retried likewise for a grace from the
// start. An error that retrying cannot fix
// (the WithTask function's, task.Permanent, queue.ErrInvalidTask,
// queue.ErrTooLarge, queue.ErrClosed) and one still there when the grace
// is used up end Run with that error: the supervisor restarts the
// source, which then treats the due time like any other it reaches late
// (a due time it emitted is not emitted again by this host, see above).
// While the schedule retries, its details show the last error and count
// the retries (ScheduleDetails).
//
// An emit given up (the grace used up, an error retrying cannot fix, or
// ctx ended) after an attempt whose outcome is unknown may have stored
// the task: the schedule looks the due time's key up, through emit when
// it is a queue.TaskFinder (the runtime's emitter is one when its
// enqueuer is: NewEmitter), bounded by the attempt timeout. The task
// found (waiting, in flight, finished or dead-lettered), the due time ran:
// it is the last (ScheduleDetails.Last), its mark is written, and Run
// goes on. Otherwise (not found: a publish cut in flight may still be
// stored; the lookup failed or cannot be made) nothing says whether it
// ran: the due time counts as unknown (ScheduleDetails.Unknown), not as
// missed, not as run, and Run ends with the error. When Run starts again,
// the marks (a host ran it) or a lookup of its key that finds the task
// make it run after all; else it stays unknown, and it is fired again
// only as any due time is (CatchUpOnce fires the latest passed due time:
// the copy is dropped by its key when the task was stored within the
// backend's de-duplication window, and the due time is then the last).
// A host that takes the schedule over knows only the marks: to it the
// due time is one that did not run.
func (s *Schedule) Run(ctx context.Context, emit Emitter) error {
	var last time.Time
	s.mu.Lock()
	marks := s.marks
	s.mu.Unlock()
	// The marks' steps at start may take a grace (then the supervisor
	// restarts the schedule).
	start := s.clock.Now()
	r := s.retryUntil(start.Add(s.grace), start)
	if marks != nil {
		var err error
		if last, err = s.lastRun(ctx, marks, r); err != nil {
			return s.stopped(ctx, err)
		}
	}
	// A due time an earlier Run gave up with its outcome unknown: it
	// ran when the marks say so or its task is found now.
	s.settleUnknown(ctx, emit, last)
	// A due time this schedule emitted in an earlier Run (before its
	// lease was lost, or its supervisor restarted it) ran, whatever the
	// marks say: they may have lost it (a bucket the server lost, a write
	// that failed).
	if fired := s.lastFired(); fired.After(last) {
		last = fired
		// Written back, so that a host that takes the schedule over
		// knows it too.
		if marks != nil {
			if err := s.mark(ctx, marks, fired, r, "record last run again"); err != nil {
				return s.stopped(ctx, err)
			}
		}
	}
	now := s.clock.Now()
	// A due time that passed before the start: on time within the grace,
	// else missed.
	if due, n := latest(s.times, last, now); !due.IsZero() {
		if err := s.maybeFire(ctx, emit, last, due, n, now); err != nil {
			return err
		}
	}
	for {
		// A due time at or before the mark ran already, even when it is
		// ahead of this clock (the host that ran it had a clock ahead of
		// this one, or this one was set back).
		next := s.times.Next(latestOf(now, last, s.lastFired()))
		if next.IsZero() {
			return nil
		}
		s.setNext(next)
		if err := s.clock.Sleep(ctx, next); err != nil {
			return nil
		}
		now = s.clock.Now()
		// The latest due time that has come: next, or a later one when
		// the clock jumped (the machine slept); those between are missed.
		since := next.Add(-time.Nanosecond)
		due, n := latest(s.times, since, now)
		if err := s.maybeFire(ctx, emit, since, due, n, now); err != nil {
			return err
		}
	}
}

// lastFired is the last due time this schedule emitted (zero: none).
func (s *Schedule) lastFired() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// latestOf returns the latest of ts.
func latestOf(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}

func (s *Schedule) setNext(t time.Time) {
	try := s.attemptTimeout(t)
	s.mu.Lock()
	s.next, s.nextTry = t, try
	s.mu.Unlock()
}
