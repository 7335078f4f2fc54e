package control_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/worker"
)

// leaseDown is the runtime's backend with its Lease failing while down
// is set: the pool cannot take work and says it is degraded.
type leaseDown struct {
	queue.Backend
	down atomic.Bool
}

func (b *leaseDown) Lease(ctx context.Context, q string, max int, leaseFor time.Duration) ([]*queue.Delivery, error) {
	if b.down.Load() {
		return nil, errors.New("backend: lease refused")
	}
	return b.Backend.Lease(ctx, q, max, leaseFor)
}

// TestQueuePoolStateIsThePools: the pool state GET /queues and
// /queues/{queue} show is the pool's own, as GET /pools says it: a pool
// that cannot lease is degraded there too, not "running"; a paused pool
// is paused, and a stopped one stopped.
func TestQueuePoolStateIsThePools(t *testing.T) {
	t.Parallel()
	mem := memory.New(memory.Options{})
	t.Cleanup(func() { _ = mem.Close(context.Background()) })
	b := &leaseDown{Backend: mem}
	b.down.Store(true)
	e := newEnvAPI(t, b, mem, &queue.MemoryOverrides{}, worker.PoolConfig{Concurrency: 1})

	poolState := func() string {
		var p control.Pool
		e.mustCall(http.StatusOK, "GET", control.Prefix+"/pools/"+testQueue, nil, &p)
		return string(p.State)
	}
	queueStates := func() (one, listed string) {
		var q control.Queue
		e.mustCall(http.StatusOK, "GET", control.Prefix+"/queues/"+testQueue, nil, &q)
		var list struct{ Queues []control.Queue }
		e.mustCall(http.StatusOK, "GET", control.Prefix+"/queues", nil, &list)
		for _, l := range list.Queues {
			if l.Queue == testQueue {
				listed = l.Pool
			}
		}
		return q.Pool, listed
	}
	eventually(t, "the pool degraded", func() bool { return poolState() == string(lifecycle.Degraded) })
	one, listed := queueStates()
	require.Equal(t, string(lifecycle.Degraded), one, "GET /queues/%s", testQueue)
	require.Equal(t, string(lifecycle.Degraded), listed, "GET /queues")

	b.down.Store(false)
	e.enqueue(1, "{}") // a lease that returns a task: the pool works again
	eventually(t, "the pool running again", func() bool { return poolState() == string(lifecycle.Running) })
	one, listed = queueStates()
	require.Equal(t, string(lifecycle.Running), one)
	require.Equal(t, string(lifecycle.Running), listed)

	e.mustCall(http.StatusOK, "POST", control.Prefix+"/pools/"+testQueue+"/pause", nil, nil)
	one, listed = queueStates()
	require.Equal(t, string(lifecycle.Paused), one)
	require.Equal(t, string(lifecycle.Paused), listed)

	e.stop()
	require.Equal(t, string(lifecycle.Stopped), poolState())
	one, listed = queueStates()
	require.Equal(t, string(lifecycle.Stopped), one)
	require.Equal(t, string(lifecycle.Stopped), listed)
}
