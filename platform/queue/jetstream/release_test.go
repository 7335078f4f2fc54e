package jetstream_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

var _ worker.Releaser = (*jetstream.Backend)(nil)

var leaseOne = jetstream.LeaseOne

// Release gives a task back without counting the delivery: a task released
// more times than MaxDeliver allows is still delivered, with the attempt
// number it had, its id, key and headers, and nothing is left behind.
func TestReleaseDoesNotCountAnAttempt(t *testing.T) {
	t.Parallel()
	b := openBackend(t, embeddedConfig(t.TempDir())) // MaxDeliver 3
	ctx := t.Context()
	tk := &task.Task{ID: "t-1", Key: "order-7", Kind: "k", Queue: "rel", Payload: []byte("p"),
		Headers: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	tk.Prepare(time.Now())
	require.NoError(t, b.Enqueue(ctx, tk))

	d := leaseOne(t, b, "rel")
	require.Equal(t, 1, d.Task.Attempt)
	require.NoError(t, b.Retry(ctx, d, time.Now()))
	d = leaseOne(t, b, "rel")
	require.Equal(t, 2, d.Task.Attempt, "a retry counts")

	for i := range 5 { // more than MaxDeliver
		require.NoError(t, b.Release(ctx, d), "release %d", i)
		d = leaseOne(t, b, "rel")
		require.Equal(t, 2, d.Task.Attempt, "a release does not count (release %d)", i)
		require.Equal(t, "t-1", d.Task.ID)
		require.Equal(t, "order-7", d.Task.Key)
		require.Equal(t, "k", d.Task.Kind)
		require.Equal(t, []byte("p"), d.Task.Payload)
		require.Equal(t, tk.Headers["traceparent"], d.Task.Header("traceparent"))
		require.Empty(t, d.Task.Header(jetstream.HeaderAttempts), "bookkeeping headers stay out of the task")
	}
	require.NoError(t, b.Retry(ctx, d, time.Now()))
	d = leaseOne(t, b, "rel")
	require.Equal(t, 3, d.Task.Attempt, "retries count on from where the released task was")
	require.NoError(t, b.Ack(ctx, d))

	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, "rel")
		return err == nil && st.Ready+st.InFlight+st.Delayed+st.Dead == 0
	}, 10*time.Second, 20*time.Millisecond, "nothing left")
	require.ErrorIs(t, b.Release(ctx, d), queue.ErrLeaseLost, "a settled delivery cannot be released")
}
