package source_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

type countingEnqueuer struct{ n atomic.Int64 }

func (c *countingEnqueuer) Enqueue(_ context.Context, ts ...*task.Task) error {
	c.n.Add(int64(len(ts)))
	return nil
}

// ticker emits one task every 5ms and counts Pause/Resume calls.
type ticker struct{ paused, resumed atomic.Int64 }

func (*ticker) Name() string { return "ticker" }
func (s *ticker) Pause()     { s.paused.Add(1) }
func (s *ticker) Resume()    { s.resumed.Add(1) }
func (*ticker) Run(ctx context.Context, emit source.Emitter) error {
	for {
		if err := emit.Emit(ctx, &task.Task{Kind: "k"}); err != nil {
			return nil // ctx ended
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestPauseHoldsEmitResumeReleases(t *testing.T) {
	enq := &countingEnqueuer{}
	reg := lifecycle.NewRegistry(nil, nil)
	src := &ticker{}
	sup, err := source.NewSupervisor(source.Config{}, enq, reg, nil, src)
	require.NoError(t, err)
	require.NoError(t, sup.Start(context.Background()))
	t.Cleanup(func() { _ = sup.Stop(context.Background()) })
	require.Eventually(t, func() bool { return enq.n.Load() > 0 }, 10*time.Second, time.Millisecond)

	require.NoError(t, sup.Pause("ticker"))
	comp, _ := reg.Get("source/ticker")
	require.Equal(t, lifecycle.Paused, comp.State())
	require.True(t, sup.Stats()[0].Paused)
	require.EqualValues(t, 1, src.paused.Load(), "a Pauser is told")
	// At most the one emit already past the gate completes.
	held := enq.n.Load()
	time.Sleep(300 * time.Millisecond) // 60 emit periods
	require.LessOrEqual(t, enq.n.Load(), held+1, "a paused source handed tasks over")

	require.NoError(t, sup.Resume("ticker"))
	require.Equal(t, lifecycle.Running, comp.State())
	require.EqualValues(t, 1, src.resumed.Load())
	after := enq.n.Load()
	require.Eventually(t, func() bool { return enq.n.Load() > after+2 }, 10*time.Second, time.Millisecond)
	require.ErrorIs(t, sup.Pause("nope"), source.ErrUnknownSource)
}
