package worker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// fakeOverrides is an OverrideStore that records what it saved and fails
// its saves while failSave is set.
type fakeOverrides struct {
	mu       sync.Mutex
	m        map[string]queue.PoolOverride
	saves    int
	failSave error
}

func (s *fakeOverrides) Load(context.Context) (map[string]queue.PoolOverride, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]queue.PoolOverride{}
	for k, v := range s.m {
		out[k] = v
	}
	return out, nil
}

func (s *fakeOverrides) Save(_ context.Context, q string, o queue.PoolOverride) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves++
	if s.failSave != nil {
		return s.failSave
	}
	if s.m == nil {
		s.m = map[string]queue.PoolOverride{}
	}
	if o.IsZero() {
		delete(s.m, q)
	} else {
		s.m[q] = o
	}
	return nil
}

func (*fakeOverrides) Durable() bool { return true }

func (s *fakeOverrides) saved(q string) (queue.PoolOverride, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.m[q]
	return o, ok
}

func startOverrideRuntime(t *testing.T, store queue.OverrideStore) (*worker.Runtime, *worker.Pool) {
	t.Helper()
	ctx := context.Background()
	b := memory.New(memory.Options{})
	t.Cleanup(func() { _ = b.Close(ctx) })
	rt, err := worker.New(worker.Params{Backend: b, Overrides: store, Config: worker.Config{"default": {Concurrency: 2}},
		Routes: []task.Route{{Kind: "k", Handler: task.HandlerFunc(func(context.Context, *task.Task) error { return nil })}}})
	require.NoError(t, err)
	require.NoError(t, rt.Start(ctx))
	t.Cleanup(func() { _ = rt.Stop(ctx) })
	p, ok := rt.Pool("default")
	require.True(t, ok)
	return rt, p
}

// TestControlPoolApplyFailsSavesNothing: a pause the pool could not
// apply is reported failed, and nothing is saved (it would take effect
// at the next restart, or on another replica, though the operator was
// told it failed).
func TestControlPoolApplyFailsSavesNothing(t *testing.T) {
	ctx := context.Background()
	store := &fakeOverrides{}
	rt, p := startOverrideRuntime(t, store)
	applyErr := errors.New("apply refused")
	worker.FailApply(rt, func(string, queue.PoolOverride) error { return applyErr })

	o, err := rt.ControlPool(ctx, "default", func(o *queue.PoolOverride) error { o.Paused = true; return nil })
	require.ErrorIs(t, err, applyErr)
	require.ErrorIs(t, err, worker.ErrOverrideNotApplied)
	require.True(t, o.IsZero(), "the override in effect is still none")
	_, saved := store.saved("default")
	require.False(t, saved, "an override the pool did not apply was saved")
	require.Equal(t, lifecycle.Running, p.State())
	require.Nil(t, p.Stats().Override)
}

// TestControlPoolSaveFailsUndoesTheApply: a resize the store could not
// save is reported failed, and the pool is as before (size and
// override): the change is in effect nowhere.
func TestControlPoolSaveFailsUndoesTheApply(t *testing.T) {
	ctx := context.Background()
	store := &fakeOverrides{failSave: errors.New("store down")}
	rt, p := startOverrideRuntime(t, store)

	o, err := rt.ControlPool(ctx, "default", func(o *queue.PoolOverride) error { o.Size, o.Paused = 5, true; return nil })
	require.ErrorIs(t, err, worker.ErrOverrideNotSaved)
	require.NotErrorIs(t, err, worker.ErrOverrideNotApplied)
	require.True(t, o.IsZero())
	require.Equal(t, 1, store.saves)
	require.Equal(t, lifecycle.Running, p.State())
	require.False(t, p.Paused())
	require.Nil(t, p.Stats().Override)
	// The surplus idle workers of the undone resize exit once woken.
	require.Eventually(t, func() bool { return p.Stats().Workers == 2 }, 10*time.Second, 5*time.Millisecond)

	// With the store back, the same change is applied and saved.
	store.mu.Lock()
	store.failSave = nil
	store.mu.Unlock()
	o, err = rt.ControlPool(ctx, "default", func(o *queue.PoolOverride) error { o.Size, o.Paused = 5, true; return nil })
	require.NoError(t, err)
	require.Equal(t, queue.PoolOverride{Paused: true, Size: 5}, o)
	got, ok := store.saved("default")
	require.True(t, ok)
	require.Equal(t, o, got)
	require.Equal(t, lifecycle.Paused, p.State())
}

// TestControlPoolSaveOfUnknownOutcome: a save the store cannot say it
// made (it may hold the change) is undone on the pool and reported as
// of unknown outcome, not as not saved.
func TestControlPoolSaveOfUnknownOutcome(t *testing.T) {
	ctx := context.Background()
	store := &fakeOverrides{failSave: fmt.Errorf("put: timeout: %w", queue.ErrOutcomeUnknown)}
	rt, p := startOverrideRuntime(t, store)

	o, err := rt.ControlPool(ctx, "default", func(o *queue.PoolOverride) error { o.Paused = true; return nil })
	require.ErrorIs(t, err, queue.ErrOutcomeUnknown)
	require.NotErrorIs(t, err, worker.ErrOverrideNotSaved)
	require.Contains(t, err.Error(), "may or may not")
	require.True(t, o.IsZero())
	require.False(t, p.Paused(), "the pool was put back")
	require.Nil(t, p.Stats().Override)
}
