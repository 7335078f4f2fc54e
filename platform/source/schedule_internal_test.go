package source

import (
	"context"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin without the system's zoneinfo

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// fakeClock is a clock the test moves by hand. Every Sleep reports the
// time it waits for on sleeping.
type fakeClock struct {
	mu       sync.Mutex
	now      time.Time
	waiters  []fakeWaiter
	sleeping chan time.Time
}

type fakeWaiter struct {
	until time.Time
	done  chan struct{}
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, sleeping: make(chan time.Time, 64)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	if !c.now.Before(t) {
		c.mu.Unlock()
		return nil
	}
	w := fakeWaiter{until: t, done: make(chan struct{})}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	c.sleeping <- t
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-w.done:
		return nil
	}
}

// set moves the clock to t and wakes the sleepers due by then.
func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.until.After(t) {
			kept = append(kept, w)
		} else {
			close(w.done)
		}
	}
	c.waiters = kept
}

// nextSleep returns the time the schedule sleeps until next.
func (c *fakeClock) nextSleep(t *testing.T) time.Time {
	t.Helper()
	select {
	case at := <-c.sleeping:
		return at
	case <-time.After(10 * time.Second):
		t.Fatal("the schedule does not sleep")
		return time.Time{}
	}
}

// dedupBackend is an Emitter that accepts one task per key, like a
// backend's de-duplication, and counts what it drops.
type dedupBackend struct {
	mu       sync.Mutex
	accepted []*task.Task
	keys     map[string]bool
	dropped  int
	emitted  chan string
	fail     error
}

func newDedup() *dedupBackend {
	return &dedupBackend{keys: map[string]bool{}, emitted: make(chan string, 64)}
}

func (b *dedupBackend) Emit(_ context.Context, tasks ...*task.Task) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return b.fail
	}
	for _, t := range tasks {
		if b.keys[t.Key] {
			b.dropped++
		} else {
			b.keys[t.Key] = true
			b.accepted = append(b.accepted, t)
		}
		b.emitted <- t.Key
	}
	return nil
}

func (b *dedupBackend) next(t *testing.T) string {
	t.Helper()
	select {
	case k := <-b.emitted:
		return k
	case <-time.After(10 * time.Second):
		t.Fatal("nothing emitted")
		return ""
	}
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// runSchedule runs s on c into b until the test ends; the channel closes
// when Run returned, with its error in *err.
func runSchedule(t *testing.T, s *Schedule, c *fakeClock, b Emitter) (<-chan struct{}, *error) {
	t.Helper()
	s.clock = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var err error
	go func() { defer close(done); err = s.Run(ctx, b) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run does not return after cancel")
		}
	})
	return done, &err
}

func TestEveryEmitsEachDueTimeOnceWithItsKey(t *testing.T) {
	s, err := Every("report", time.Hour, "report.run")
	require.NoError(t, err)
	c := newFakeClock(at("2026-12-04T10:30:00Z"))
	b := newDedup()
	runSchedule(t, s, c, b)
	for _, due := range []string{"2026-12-04T11:00:00Z", "2026-12-04T12:00:00Z", "2026-12-04T13:00:00Z"} {
		require.Equal(t, at(due), c.nextSleep(t))
		c.set(at(due).Add(2 * time.Second)) // a little late: within the grace
		require.Equal(t, "report@"+due, b.next(t))
	}
	require.Equal(t, at("2026-12-04T14:00:00Z"), c.nextSleep(t))
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Len(t, b.accepted, 3)
	require.Zero(t, b.dropped)
	for _, tk := range b.accepted {
		require.Equal(t, "report.run", tk.Kind)
		require.Equal(t, "report", tk.Header(HeaderSchedule))
		require.Equal(t, "report@"+tk.Header(HeaderScheduledAt), tk.Key)
	}
	d := s.Details().(ScheduleDetails)
	require.Equal(t, at("2026-12-04T13:00:00Z"), d.Last)
	require.Equal(t, at("2026-12-04T14:00:00Z"), d.Next)
}

// Two hosts run the same schedule, started at different times: each due
// time reaches the backend twice with the same key and is accepted once.
func TestScheduleOnTwoHostsIsOncePerCluster(t *testing.T) {
	b := newDedup()
	c1 := newFakeClock(at("2026-12-04T10:07:13Z"))
	c2 := newFakeClock(at("2026-12-04T10:41:59Z"))
	for _, c := range []*fakeClock{c1, c2} {
		s, err := Every("sync", 15*time.Minute, "sync.run")
		require.NoError(t, err)
		runSchedule(t, s, c, b)
	}
	// Host 1 runs 10:15 and 10:30 alone.
	require.Equal(t, at("2026-12-04T10:15:00Z"), c1.nextSleep(t))
	c1.set(at("2026-12-04T10:15:00Z"))
	require.Equal(t, "sync@2026-12-04T10:15:00Z", b.next(t))
	require.Equal(t, at("2026-12-04T10:30:00Z"), c1.nextSleep(t))
	c1.set(at("2026-12-04T10:30:00Z"))
	require.Equal(t, "sync@2026-12-04T10:30:00Z", b.next(t))
	require.Equal(t, at("2026-12-04T10:45:00Z"), c1.nextSleep(t))
	require.Equal(t, at("2026-12-04T10:45:00Z"), c2.nextSleep(t))
	for _, due := range []string{"2026-12-04T10:45:00Z", "2026-12-04T11:00:00Z", "2026-12-04T11:15:00Z"} {
		c1.set(at(due).Add(300 * time.Millisecond))
		c2.set(at(due).Add(1500 * time.Millisecond))
		require.Equal(t, "sync@"+due, b.next(t))
		require.Equal(t, "sync@"+due, b.next(t))
		c1.nextSleep(t)
		c2.nextSleep(t)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var keys []string
	for _, tk := range b.accepted {
		keys = append(keys, tk.Key)
	}
	require.Equal(t, []string{
		"sync@2026-12-04T10:15:00Z", "sync@2026-12-04T10:30:00Z", "sync@2026-12-04T10:45:00Z",
		"sync@2026-12-04T11:00:00Z", "sync@2026-12-04T11:15:00Z",
	}, keys)
	require.Equal(t, 3, b.dropped, "the second host's copies")
}

func TestCronInTimeZone(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	s, err := Cron("nightly", "0 9 * * *", "nightly.run", InLocation(berlin))
	require.NoError(t, err)
	c := newFakeClock(at("2026-12-04T07:00:00Z"))
	b := newDedup()
	runSchedule(t, s, c, b)
	// 09:00 in Berlin is 08:00 UTC in December.
	require.Equal(t, at("2026-12-04T08:00:00Z"), c.nextSleep(t).UTC())
	c.set(at("2026-12-04T08:00:00Z"))
	require.Equal(t, "nightly@2026-12-04T08:00:00Z", b.next(t))
	require.Equal(t, at("2026-12-05T08:00:00Z"), c.nextSleep(t).UTC())
	require.Equal(t, "Europe/Berlin", s.Details().(ScheduleDetails).Location)

	hourly, err := Cron("hourly", "0 * * * *", "h.run")
	require.NoError(t, err)
	c2 := newFakeClock(at("2026-12-04T07:59:59Z"))
	runSchedule(t, hourly, c2, b)
	require.Equal(t, at("2026-12-04T08:00:00Z"), c2.nextSleep(t).UTC())
}

func TestMissedAtStart(t *testing.T) {
	mark := at("2026-12-04T08:00:00Z")
	start := at("2026-12-04T10:30:00Z") // 09:00 and 10:00 passed with no host up
	cases := []struct {
		name   string
		missed Missed
		mark   time.Time
		start  time.Time
		want   []string
	}{
		{name: "skip", missed: SkipMissed, mark: mark, start: start},
		{name: "catch up the latest once", missed: CatchUpOnce, mark: mark, start: start, want: []string{"job@2026-12-04T10:00:00Z"}},
		{name: "catch up: nothing missed", missed: CatchUpOnce, mark: at("2026-12-04T10:00:00Z"), start: start},
		{name: "skip, but on time within the grace", missed: SkipMissed, mark: mark, start: at("2026-12-04T10:00:40Z"), want: []string{"job@2026-12-04T10:00:00Z"}},
		{name: "skip, no marks: within the grace", missed: SkipMissed, start: at("2026-12-04T10:00:40Z"), want: []string{"job@2026-12-04T10:00:00Z"}},
		{name: "skip, no marks", missed: SkipMissed, start: start},
		{name: "catch up, no marks: nothing says it ran", missed: CatchUpOnce, start: start, want: []string{"job@2026-12-04T10:00:00Z"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			marks := &MemoryMarks{}
			opts := []ScheduleOption{OnMissed(tc.missed)}
			if !tc.mark.IsZero() {
				require.NoError(t, marks.SetLastRun(context.Background(), "job", tc.mark))
				opts = append(opts, WithMarks(marks))
			}
			s, err := Every("job", time.Hour, "job.run", opts...)
			require.NoError(t, err)
			c := newFakeClock(tc.start)
			b := newDedup()
			runSchedule(t, s, c, b)
			require.Equal(t, at("2026-12-04T11:00:00Z"), c.nextSleep(t))
			var got []string
			for range len(b.emitted) {
				got = append(got, <-b.emitted)
			}
			require.Equal(t, tc.want, got)
			if tc.mark.IsZero() {
				return
			}
			last, err := marks.LastRun(context.Background(), "job")
			require.NoError(t, err)
			if len(tc.want) > 0 {
				require.Equal(t, at("2026-12-04T10:00:00Z"), last, "the mark follows the run")
			} else {
				require.Equal(t, tc.mark, last)
			}
		})
	}
}

// The machine slept through several due times while the schedule ran.
func TestMissedWhileRunning(t *testing.T) {
	for _, tc := range []struct {
		missed Missed
		want   []string
	}{
		{SkipMissed, nil},
		{CatchUpOnce, []string{"job@2026-12-04T10:00:00Z", "job@2026-12-04T14:00:00Z"}}, // 10:00: no marks, nothing says it ran
	} {
		s, err := Every("job", time.Hour, "job.run", OnMissed(tc.missed))
		require.NoError(t, err)
		c := newFakeClock(at("2026-12-04T10:30:00Z"))
		b := newDedup()
		runSchedule(t, s, c, b)
		require.Equal(t, at("2026-12-04T11:00:00Z"), c.nextSleep(t))
		c.set(at("2026-12-04T14:10:00Z"))
		require.Equal(t, at("2026-12-04T15:00:00Z"), c.nextSleep(t))
		var got []string
		for range len(b.emitted) {
			got = append(got, <-b.emitted)
		}
		require.Equal(t, tc.want, got, "policy %d", tc.missed)
		// 10:00 before the start (unknown without marks: counted as one),
		// then 11:00 to 14:00, of which CatchUpOnce ran 14:00.
		want := int64(5)
		if tc.missed == CatchUpOnce {
			want = 3 // 11:00, 12:00, 13:00 (10:00 was caught up at start)
		}
		require.Equal(t, want, s.Details().(ScheduleDetails).Missed, "policy %d", tc.missed)
	}
}

func TestWithTaskKeepsTheKey(t *testing.T) {
	s, err := Every("job", time.Hour, "job.run", WithTask(func(due time.Time) (*task.Task, error) {
		return &task.Task{Kind: "custom", Payload: []byte(due.Format(time.Kitchen)), Key: "ignored"}, nil
	}))
	require.NoError(t, err)
	c := newFakeClock(at("2026-12-04T10:30:00Z"))
	b := newDedup()
	runSchedule(t, s, c, b)
	c.nextSleep(t)
	c.set(at("2026-12-04T11:00:00Z"))
	require.Equal(t, "job@2026-12-04T11:00:00Z", b.next(t))
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Equal(t, "custom", b.accepted[0].Kind)
	require.Equal(t, "11:00AM", string(b.accepted[0].Payload))
}

func TestBadSchedules(t *testing.T) {
	_, err := Cron("x", "61 * * * *", "k")
	require.ErrorIs(t, err, ErrBadSchedule)
	require.ErrorContains(t, err, `"61 * * * *"`)
	_, err = Every("x", 10*time.Millisecond, "k")
	require.ErrorIs(t, err, ErrBadSchedule)
	_, err = Every("", time.Hour, "k")
	require.ErrorIs(t, err, ErrBadSchedule)
	_, err = Every("x", time.Hour, "k", OnMissed(Missed(7)))
	require.ErrorIs(t, err, ErrBadSchedule)
}

// On the real clock: due times are whole seconds, each emitted once.
func TestEveryOnTheRealClock(t *testing.T) {
	s, err := Every("tick", time.Second, "tick.run")
	require.NoError(t, err)
	b := newDedup()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, b) }()
	first, second := b.next(t), b.next(t)
	cancel()
	require.NoError(t, <-done)
	require.NotEqual(t, first, second)
	for _, k := range []string{first, second} {
		due, err := time.Parse(time.RFC3339Nano, k[len("tick@"):])
		require.NoError(t, err)
		require.Equal(t, due, due.Truncate(time.Second), k)
	}
}

// "@every <d>" is due at multiples of d since the epoch, as Every is, so
// that it fires, and every host derives the same due times and keys.
func TestCronEveryDescriptorFiresOnSharedDueTimes(t *testing.T) {
	b := newDedup()
	c1 := newFakeClock(at("2026-12-04T10:07:13Z"))
	c2 := newFakeClock(at("2026-12-04T10:41:59Z"))
	for _, c := range []*fakeClock{c1, c2} {
		s, err := Cron("sync", "@every 15m", "sync.run")
		require.NoError(t, err)
		runSchedule(t, s, c, b)
	}
	require.Equal(t, at("2026-12-04T10:15:00Z"), c1.nextSleep(t).UTC())
	require.Equal(t, at("2026-12-04T10:45:00Z"), c2.nextSleep(t).UTC())
	c1.set(at("2026-12-04T10:15:00Z"))
	require.Equal(t, "sync@2026-12-04T10:15:00Z", b.next(t))
	require.Equal(t, at("2026-12-04T10:30:00Z"), c1.nextSleep(t).UTC())
	c1.set(at("2026-12-04T10:45:00Z"))
	c2.set(at("2026-12-04T10:45:01Z"))
	require.Equal(t, "sync@2026-12-04T10:45:00Z", b.next(t))
	require.Equal(t, "sync@2026-12-04T10:45:00Z", b.next(t))
}

// A time zone prefix without an expression is an error, not a panic of
// the cron parser.
func TestCronBadTimeZonePrefix(t *testing.T) {
	for _, spec := range []string{"TZ=UTC", "CRON_TZ=Europe/Berlin", "TZ=Nowhere/Else 0 * * * *"} {
		require.NotPanics(t, func() {
			_, err := Cron("x", spec, "k")
			require.ErrorIs(t, err, ErrBadSchedule, spec)
		}, spec)
	}
}

// nextN returns the n due times of d after from, in UTC.
func nextN(d dueTimes, from time.Time, n int) []time.Time {
	var out []time.Time
	for range n {
		from = d.Next(from)
		out = append(out, from.UTC())
	}
	return out
}

// A cron time at fixed hours is due once a day across daylight saving
// time: once when the clocks go back (the first 02:30), and at the change
// when they skip it; a schedule over every hour runs each hour that
// passes.
func TestCronAcrossDaylightSavingTime(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	daily, err := parseCron("30 2 * * *", berlin)
	require.NoError(t, err)
	// 2026-10-25 03:00 CEST becomes 02:00 CET (01:00 UTC).
	require.Equal(t, []time.Time{at("2026-10-24T00:30:00Z"), at("2026-10-25T00:30:00Z"), at("2026-10-26T01:30:00Z")},
		nextN(daily, at("2026-10-23T12:00:00Z"), 3))
	// Asked from within the repeated hour, after the first 02:30.
	require.Equal(t, at("2026-10-26T01:30:00Z"), daily.Next(at("2026-10-25T01:10:00Z")).UTC())
	// 2026-03-29 02:00 CET becomes 03:00 CEST (01:00 UTC): 02:30 is skipped,
	// the run is at the change.
	require.Equal(t, []time.Time{at("2026-03-28T01:30:00Z"), at("2026-03-29T01:00:00Z"), at("2026-03-30T00:30:00Z")},
		nextN(daily, at("2026-03-27T12:00:00Z"), 3))

	hourly, err := parseCron("0 * * * *", berlin)
	require.NoError(t, err)
	require.Equal(t, []time.Time{at("2026-10-25T00:00:00Z"), at("2026-10-25T01:00:00Z"), at("2026-10-25T02:00:00Z")},
		nextN(hourly, at("2026-10-24T23:30:00Z"), 3))

	// A TZ= prefix names the time zone.
	tz, err := parseCron("TZ=Europe/Berlin 30 2 * * *", time.UTC)
	require.NoError(t, err)
	require.Equal(t, []time.Time{at("2026-10-25T00:30:00Z"), at("2026-10-26T01:30:00Z")}, nextN(tz, at("2026-10-24T12:00:00Z"), 2))

	// The schedule fires each of them once.
	s, err := Cron("nightly", "30 2 * * *", "nightly.run", InLocation(berlin))
	require.NoError(t, err)
	c := newFakeClock(at("2026-10-24T12:00:00Z"))
	b := newDedup()
	runSchedule(t, s, c, b)
	for _, due := range []string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"} {
		require.Equal(t, at(due), c.nextSleep(t).UTC())
		c.set(at(due))
		require.Equal(t, "nightly@"+due, b.next(t))
	}
}

// ctxMarks are MemoryMarks that fail like a store once ctx ended.
type ctxMarks struct{ MemoryMarks }

func (m *ctxMarks) SetLastRun(ctx context.Context, schedule string, due time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.MemoryMarks.SetLastRun(ctx, schedule, due)
}

// cancelOnEmit accepts a task, then cancels the run (its host lost the
// lease, or stops) before Emit returns.
type cancelOnEmit struct {
	cancel  context.CancelFunc
	emitted chan string
}

func (e *cancelOnEmit) Emit(_ context.Context, tasks ...*task.Task) error {
	for _, t := range tasks {
		e.emitted <- t.Key
	}
	e.cancel()
	return nil
}

// A due time whose task was enqueued is marked even when the run is
// stopped right after: else the next host, catching up, runs it again.
func TestScheduleMarksAnEnqueuedDueTimeWhenStopped(t *testing.T) {
	marks := &ctxMarks{}
	s, err := Every("job", time.Hour, "job.run", OnMissed(CatchUpOnce), WithMarks(marks))
	require.NoError(t, err)
	c := newFakeClock(at("2026-12-04T10:30:00Z"))
	s.clock = c
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := &cancelOnEmit{cancel: cancel, emitted: make(chan string, 4)}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, e) }()
	require.Equal(t, at("2026-12-04T11:00:00Z"), c.nextSleep(t))
	require.Equal(t, "job@2026-12-04T10:00:00Z", <-e.emitted) // caught up at the start (no mark)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run does not return")
	}
	last, err := marks.LastRun(context.Background(), "job")
	require.NoError(t, err)
	require.Equal(t, at("2026-12-04T10:00:00Z"), last)
}

// jumpingWall is a wall clock that runs with the real one and is set
// forward by jump, as NTP steps it or as it reads after the machine slept
// (the monotonic clock, which timers use, does not advance in a suspend).
type jumpingWall struct {
	mu  sync.Mutex
	off time.Duration
}

func (w *jumpingWall) now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.Now().Round(0).Add(w.off)
}

func (w *jumpingWall) jump(d time.Duration) {
	w.mu.Lock()
	w.off += d
	w.mu.Unlock()
}

// The real clock's Sleep ends soon after the wall clock reached the due
// time, also when the wall clock jumped there (set forward, or the
// machine slept before the due time): it does not wait for the timer it
// set for the old distance, which would make the due time late by the
// jump, and a schedule would count it missed and skip it.
func TestRealClockSleepFollowsAWallClockJump(t *testing.T) {
	w := &jumpingWall{}
	c := realClock{wall: w.now}
	due := c.Now().Add(time.Hour)
	go func() {
		time.Sleep(100 * time.Millisecond)
		w.jump(time.Hour - time.Second) // the due time is a second away now
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, c.Sleep(ctx, due), "Sleep ends once the wall clock reads the due time")
	require.Less(t, time.Since(start), 5*time.Second)
	require.False(t, c.Now().Before(due), "not before the due time")
}

// A schedule sleeping towards a due time a day away, whose wall clock is
// set forward by five minutes in the middle, runs that due time on time
// by the wall clock, not five minutes late (which is more than the
// grace: the run would be missed).
func TestScheduleRunsADueTimeAfterAWallClockJump(t *testing.T) {
	w := &jumpingWall{}
	s, err := Every("daily", 24*time.Hour, "daily.run", WithGrace(time.Minute))
	require.NoError(t, err)
	s.clock = realClock{wall: w.now}
	// Two seconds before tomorrow's due time, by the wall clock.
	next := s.times.Next(time.Now())
	w.jump(next.Sub(time.Now()) - 2*time.Second - 5*time.Minute)
	b := newDedup()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, b) }()
	require.Eventually(t, func() bool { return s.Details().(ScheduleDetails).Next.Equal(next) }, 5*time.Second, 10*time.Millisecond)
	missed := s.Details().(ScheduleDetails).Missed // today's due time, before the start
	w.jump(5 * time.Minute)                        // NTP steps the clock: the due time is 2s away
	key := b.next(t)
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, s.Key(next), key)
	require.Equal(t, missed, s.Details().(ScheduleDetails).Missed, "the due time is not missed")
}

// A due time at or before the schedule's mark ran already, also when it
// lies ahead of this host's clock: the host that ran it (before a
// hand-over, say) had a clock a few minutes ahead, or this host's clock
// was set back. The schedule waits for the first due time after the
// mark; running 12:00 again when this clock reaches it, longer after the
// first run than the de-duplication window, would run it twice.
func TestScheduleDoesNotRunADueTimeAtOrBeforeItsMark(t *testing.T) {
	for _, missed := range []Missed{SkipMissed, CatchUpOnce} {
		marks := &MemoryMarks{}
		require.NoError(t, marks.SetLastRun(context.Background(), "job", at("2026-12-04T12:00:00Z")))
		s, err := Every("job", time.Hour, "job.run", OnMissed(missed), WithMarks(marks))
		require.NoError(t, err)
		c := newFakeClock(at("2026-12-04T11:57:00Z")) // three minutes behind the host that ran 12:00
		b := newDedup()
		runSchedule(t, s, c, b)
		require.Equal(t, at("2026-12-04T13:00:00Z"), c.nextSleep(t), "policy %d", missed)
		c.set(at("2026-12-04T13:00:00Z"))
		require.Equal(t, "job@2026-12-04T13:00:00Z", b.next(t), "policy %d", missed)
		require.Empty(t, b.emitted, "policy %d", missed)
		require.Zero(t, s.Details().(ScheduleDetails).Missed, "policy %d", missed)
	}
}
