package jetstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

// A key is accepted once within the duplicate window even after a
// restart: the server forgets acked tasks when it restarts (it rebuilds
// its duplicate table from the messages it still stores), the backend's
// finished-key markers do not. Queued, acked, dead-lettered and released
// keys (a released task is queued again under a message id of its own)
// are all refused after the restart; a new key is accepted.
func TestDedupSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cfg := embeddedConfig(t.TempDir())
	b := openBackend(t, cfg)
	require.NoError(t, b.Enqueue(ctx,
		&task.Task{ID: "a", Kind: "k", Queue: "dd"},
		&task.Task{ID: "b", Kind: "k", Queue: "dd"},
		&task.Task{ID: "e", Kind: "k", Queue: "dd"},
		&task.Task{ID: "c", Kind: "k", Queue: "dd"}))
	acked := leaseOne(t, b, "dd")
	require.Equal(t, "a", acked.Task.ID)
	require.NoError(t, b.Ack(ctx, acked))
	dead := leaseOne(t, b, "dd")
	require.Equal(t, "b", dead.Task.ID)
	require.NoError(t, b.DeadLetter(ctx, dead, "no"))
	released := leaseOne(t, b, "dd")
	require.Equal(t, "e", released.Task.ID)
	require.NoError(t, b.Release(ctx, released))
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	require.NoError(t, b.Close(cctx))
	cancel()

	b = openBackend(t, cfg)
	require.NoError(t, b.Enqueue(ctx,
		&task.Task{ID: "a", Kind: "k", Queue: "dd"},
		&task.Task{ID: "b", Kind: "k", Queue: "dd"},
		&task.Task{ID: "c", Kind: "k", Queue: "dd"},
		&task.Task{ID: "d", Kind: "k", Queue: "dd"},
		&task.Task{ID: "e", Kind: "k", Queue: "dd"}))
	var got []string
	for range 3 {
		d := leaseOne(t, b, "dd")
		got = append(got, d.Task.ID)
		require.NoError(t, b.Ack(ctx, d))
	}
	require.ElementsMatch(t, []string{"c", "d", "e"}, got, "only the queued tasks and the new key, once each")
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, "dd")
		require.NoError(t, err)
		return st.Ready+st.InFlight+st.Delayed == 0 && st.Dead == 1
	}, 10*time.Second, 20*time.Millisecond)
}
