package worker_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/queue/queuetest"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// refusingDeclarer is a memory backend that cannot set queues up.
type refusingDeclarer struct{ *memory.Backend }

func (refusingDeclarer) Declare(context.Context, ...string) error {
	return errors.New("stream conflicts")
}

// StartPools declares the routes' queues to the backend before any task:
// the queues are listed at once, and a backend that cannot set a queue
// up stops the start, naming the queues, with no pool running.
func TestStartPoolsDeclaresQueues(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := task.HandlerFunc(func(context.Context, *task.Task) error { return nil })
	routes := []task.Route{{Kind: "a", Queue: "alpha", Handler: h}, {Kind: "b", Queue: "beta", Handler: h}}

	be := memory.New(memory.Options{})
	t.Cleanup(func() { _ = be.Close(context.Background()) })
	rt, err := worker.New(worker.Params{Backend: be, Routes: routes})
	require.NoError(t, err)
	require.NoError(t, rt.StartPools(ctx))
	t.Cleanup(func() { _ = rt.StopPools(context.Background()) })
	qs, err := be.Queues(ctx)
	require.NoError(t, err)
	require.Subset(t, qs, []string{"alpha", "beta"}, "declared before the first task")

	bad := refusingDeclarer{memory.New(memory.Options{})}
	t.Cleanup(func() { _ = bad.Close(context.Background()) })
	rt2, err := worker.New(worker.Params{Backend: bad, Routes: routes})
	require.NoError(t, err)
	err = rt2.StartPools(ctx)
	require.ErrorContains(t, err, "stream conflicts")
	require.ErrorContains(t, err, "alpha")
	p, ok := rt2.Pool("alpha")
	require.True(t, ok)
	require.NotEqual(t, lifecycle.Running, p.State(), "no pool started")
}

// A backend wrapped in queuetest.Faulty is declared like the backend
// itself: the wrapper passes Declare on, so a host tested through it
// starts as it would without it.
func TestStartPoolsDeclaresThroughFaulty(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := task.HandlerFunc(func(context.Context, *task.Task) error { return nil })
	routes := []task.Route{{Kind: "a", Queue: "alpha", Handler: h}}

	mem := memory.New(memory.Options{})
	t.Cleanup(func() { _ = mem.Close(context.Background()) })
	rt, err := worker.New(worker.Params{Backend: queuetest.NewFaulty(mem), Routes: routes})
	require.NoError(t, err)
	require.NoError(t, rt.StartPools(ctx))
	t.Cleanup(func() { _ = rt.StopPools(context.Background()) })
	qs, err := mem.Queues(ctx)
	require.NoError(t, err)
	require.Contains(t, qs, "alpha", "declared through the wrapper before the first task")

	bad := refusingDeclarer{memory.New(memory.Options{})}
	t.Cleanup(func() { _ = bad.Close(context.Background()) })
	rt2, err := worker.New(worker.Params{Backend: queuetest.NewFaulty(bad), Routes: routes})
	require.NoError(t, err)
	require.ErrorContains(t, rt2.StartPools(ctx), "stream conflicts", "the wrapped backend's refusal stops the start")
}
