package jetstream

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// meanwhileKey marks the context of the call during which
// deadLookupJS runs its function.
type meanwhileKey struct{}

// deadLookupJS is a JetStream API that runs meanwhile, once armed, when
// a call whose context carries meanwhileKey looks the dead-letter stream
// up: what another call does between a lookup's read of the work stream
// and its read of the dead letters.
type deadLookupJS struct {
	jetstream.JetStream
	dead      string
	mu        sync.Mutex
	meanwhile func()
}

func (s *deadLookupJS) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	var f func()
	if ctx.Value(meanwhileKey{}) != nil && name == s.dead {
		s.mu.Lock()
		f, s.meanwhile = s.meanwhile, nil
		s.mu.Unlock()
	}
	if f != nil {
		f()
	}
	return s.JetStream.Stream(ctx, name)
}

// TestFindTasksDuringARedriveFindsTheTask: a task looked up while an
// operator re-drives its dead letter (the copy stored in the work stream
// after the lookup read it, the dead letter deleted before the lookup
// read the dead letters) is found, by id and by key, queued. The lookup
// answered that no such task exists: `host ctl task <id>` said "not
// found" for a task that was queued all along.
func TestFindTasksDuringARedriveFindsTheTask(t *testing.T) {
	t.Parallel()
	onEachTestServer(t, Config{AckWait: 5 * time.Second}, func(t *testing.T, cfg Config) {
		ctx := t.Context()
		b, err := New(Params{Config: cfg})
		require.NoError(t, err)
		js := &deadLookupJS{dead: b.names.deadStream()}
		b.faultJS = func(inner jetstream.JetStream) jetstream.JetStream {
			js.JetStream = inner
			return js
		}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = b.Close(cctx)
		})
		require.NoError(t, b.Start(ctx))
		const qn = "find-redrive"
		for _, l := range []queue.TaskLookup{{ID: "by-id"}, {Key: "by-key"}} {
			id := l.ID + l.Key
			require.NoError(t, b.Enqueue(ctx, &task.Task{ID: id, Key: id, Kind: "k", Queue: qn}))
			d := leaseOne(t, b, qn)
			require.Equal(t, id, d.Task.ID)
			require.NoError(t, b.DeadLetter(ctx, d, "boom"))

			var n int
			var rerr error
			js.mu.Lock()
			js.meanwhile = func() { n, rerr = b.Redrive(ctx, qn, id) }
			js.mu.Unlock()
			s, err := b.FindTasks(context.WithValue(ctx, meanwhileKey{}, true), qn, l)
			require.NoError(t, err)
			require.NoError(t, rerr)
			require.Equal(t, 1, n, "re-driven during the lookup")
			require.Len(t, s.Found, 1, "lookup %+v: %+v", l, s)
			// Queued: ready, or in flight once this process's puller
			// prefetched it (as FindTasks documents).
			require.Contains(t, []queue.TaskState{queue.StateReady, queue.StateInFlight}, s.Found[0].State)
			require.Equal(t, id, s.Found[0].Task.ID)

			d = leaseOne(t, b, qn)
			require.Equal(t, id, d.Task.ID)
			require.NoError(t, b.Ack(ctx, d))
		}
	})
}
