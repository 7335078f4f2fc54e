package source_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// standbySource is an exclusive source that records its standby calls.
type standbySource struct {
	name      string
	exclusive bool
	ran       chan struct{}

	mu      sync.Mutex
	standby []bool
}

func (s *standbySource) Name() string    { return s.name }
func (s *standbySource) Exclusive() bool { return s.exclusive }
func (s *standbySource) SetStandby(on bool) {
	s.mu.Lock()
	s.standby = append(s.standby, on)
	s.mu.Unlock()
}

func (s *standbySource) Run(ctx context.Context, _ source.Emitter) error {
	s.ran <- struct{}{}
	<-ctx.Done()
	return nil
}

// Prepare wraps the sources that say they are exclusive (with the
// provider's lease of their name), leaves the others alone, and gives
// schedules the marks.
func TestPrepareWrapsExclusiveSourcesAndGivesMarks(t *testing.T) {
	t.Parallel()
	leases := &lease.Locals{Holder: "this-host"}
	excl := &standbySource{name: "mailbox", exclusive: true, ran: make(chan struct{}, 1)}
	plain := &standbySource{name: "plain", ran: make(chan struct{}, 1)}
	sched, err := source.Every("tick", time.Hour, "tick", source.OnMissed(source.CatchUpOnce))
	require.NoError(t, err)
	marks := &source.MemoryMarks{}
	require.NoError(t, marks.SetLastRun(context.Background(), "tick", time.Unix(3600, 0)))

	out := source.Prepare(leases, marks, []source.Source{excl, plain, sched})
	require.Len(t, out, 3)
	require.Same(t, plain, out[1], "a source that is not exclusive runs as it is")
	for _, i := range []int{0, 2} {
		require.NotSame(t, []source.Source{excl, plain, sched}[i], out[i], "wrapped")
		_, ok := out[i].(source.Detailer).Details().(source.ExclusiveDetails)
		require.True(t, ok)
	}

	// The wrapped source takes the lease "source/mailbox": while it runs,
	// that lease is held by this host, and its standby ended.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- out[0].Run(ctx, nopEmitter{}) }()
	<-excl.ran
	st := leases.Lease("source/mailbox").Status()
	require.True(t, st.Held)
	require.Equal(t, "this-host", st.Holder)
	d := out[0].(source.Detailer).Details().(source.ExclusiveDetails)
	require.Equal(t, "this-host", d.Lease.Holder)
	require.False(t, d.Lease.Since.IsZero())
	cancel()
	require.NoError(t, <-done)
	excl.mu.Lock()
	require.Equal(t, []bool{true, false, false}, excl.standby, "standby while waiting, not once held, not after")
	excl.mu.Unlock()
	require.False(t, leases.Lease("source/mailbox").Status().Held, "released")

	// The schedule keeps its last run in the marks it was given: it
	// catches up the latest missed hour once and moves the mark there.
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	em := &countingEmitter{got: make(chan string, 4)}
	go func() { _ = out[2].Run(sctx, em) }()
	key := <-em.got
	hour := time.Now().UTC().Truncate(time.Hour)
	require.Equal(t, "tick@"+hour.Format(time.RFC3339Nano), key)
	require.Eventually(t, func() bool { return mustLast(t, marks).Equal(hour) }, 5*time.Second, 5*time.Millisecond)
}

type countingEmitter struct{ got chan string }

func (e *countingEmitter) Emit(_ context.Context, ts ...*task.Task) error {
	for _, t := range ts {
		e.got <- t.Key
	}
	return nil
}

func mustLast(t *testing.T, m source.Marks) time.Time {
	t.Helper()
	l, err := m.LastRun(context.Background(), "tick")
	require.NoError(t, err)
	return l
}

// The sources.lease section: defaults hand a dead holder's lease over
// within 8 s; a TTL out of range or a bad bucket name is a problem named
// by its key.
func TestLeaseConfig(t *testing.T) {
	t.Parallel()
	c := source.Config{}.WithDefaults()
	require.NoError(t, c.Validate())
	require.Equal(t, 6*time.Second, c.Lease.TTL)
	require.Equal(t, 8*time.Second, c.Lease.HandOverWithin())
	require.Equal(t, lease.DefaultBucket, c.Lease.Bucket)
	require.Equal(t, lease.DefaultMarksBucket, c.Lease.MarksBucket)

	c.Lease.TTL = 500 * time.Millisecond
	c.Lease.Bucket = "bad.bucket"
	err := c.Validate()
	require.ErrorContains(t, err, "lease.ttl: must be between 1s and 5m0s (got 500ms)")
	require.ErrorContains(t, err, `lease.bucket: must be letters, digits, '-' or '_' (got "bad.bucket")`)
}
