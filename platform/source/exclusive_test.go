package source_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// blockingSource runs until its context ends, counting how many of its
// kind run at once.
type blockingSource struct {
	name    string
	running *atomic.Int32
	maxSeen *atomic.Int32
	started chan string
}

func (s *blockingSource) Name() string { return s.name }

func (s *blockingSource) Run(ctx context.Context, _ source.Emitter) error {
	n := s.running.Add(1)
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	s.started <- s.name
	<-ctx.Done()
	s.running.Add(-1)
	return nil
}

func (s *blockingSource) Complete(context.Context, *task.Task, task.Outcome, string) error {
	return nil
}

type nopEmitter struct{}

func (nopEmitter) Emit(context.Context, ...*task.Task) error { return nil }

// Two hosts' copies of one source share a local lease: one runs; when its
// host stops, the other takes over.
func TestExclusiveRunsOneAtATime(t *testing.T) {
	l := lease.NewLocal("mailbox", "this-host")
	var running, maxSeen atomic.Int32
	started := make(chan string, 4)
	var wg sync.WaitGroup
	cancels := map[string]context.CancelFunc{}
	for _, host := range []string{"a", "b"} {
		src := source.Exclusive(&blockingSource{name: host, running: &running, maxSeen: &maxSeen, started: started}, l)
		_, completes := src.(source.Completer)
		require.True(t, completes, "Completer is forwarded")
		ctx, cancel := context.WithCancel(context.Background())
		cancels[host] = cancel
		wg.Add(1)
		go func() { defer wg.Done(); assert.NoError(t, src.Run(ctx, nopEmitter{})) }()
	}
	first := waitStarted(t, started)
	st := l.Status()
	require.True(t, st.Held)
	require.Equal(t, "this-host", st.Holder)
	cancels[first]()
	second := waitStarted(t, started)
	require.NotEqual(t, first, second)
	for _, c := range cancels {
		c()
	}
	wg.Wait()
	require.EqualValues(t, 1, maxSeen.Load(), "never two at once")
	require.False(t, l.Status().Held, "released on stop")
}

func waitStarted(t *testing.T, started <-chan string) string {
	t.Helper()
	select {
	case s := <-started:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no source started")
		return ""
	}
}

// lossyLease is a lease whose hold the test loses by hand.
type lossyLease struct {
	*lease.Local
	holds chan *lossyHold
}

type lossyHold struct {
	lease.Hold
	lost chan struct{}
}

func (h *lossyHold) Lost() <-chan struct{} { return h.lost }

func (l *lossyLease) Acquire(ctx context.Context) (lease.Hold, error) {
	h, err := l.Local.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	lh := &lossyHold{Hold: h, lost: make(chan struct{})}
	l.holds <- lh
	return lh, nil
}

// A lost hold cancels the source at once, and Run contends again.
func TestExclusiveStopsTheSourceWhenTheHoldIsLost(t *testing.T) {
	l := &lossyLease{Local: lease.NewLocal("mailbox", "h"), holds: make(chan *lossyHold, 2)}
	var running, maxSeen atomic.Int32
	started := make(chan string, 4)
	src := source.Exclusive(&blockingSource{name: "s", running: &running, maxSeen: &maxSeen, started: started}, l)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, nopEmitter{}) }()
	h := <-l.holds
	waitStarted(t, started)
	close(h.lost)
	<-l.holds // acquired again: the source was stopped and the hold released
	waitStarted(t, started)
	require.EqualValues(t, 1, maxSeen.Load())
	d := src.(source.Detailer).Details().(source.ExclusiveDetails)
	require.EqualValues(t, 1, d.Losses)
	require.True(t, d.Lease.Held)
	cancel()
	require.NoError(t, <-done)
}
