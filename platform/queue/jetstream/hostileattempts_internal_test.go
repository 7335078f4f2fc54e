package jetstream

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestAbsurdAttemptCountIsNotATask: a message whose attempts used before
// a Release are beyond any attempt limit (math.MaxInt64, written by
// someone else) is not a task: it is dead-lettered with the reason. Its
// count used to overflow when the delivery added its own, and the task
// was handed out as a first attempt.
func TestAbsurdAttemptCountIsNotATask(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{MaxDeliver: 3, AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "absurd"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "first", Kind: "k", Queue: qn}))
	q, err := b.queue(qn)
	require.NoError(t, err)
	for i, h := range []nats.Header{
		{HeaderTask: {"kind=k attempts=9223372036854775807"}, hdrMsgID: {"a-1"}},
		{HeaderTask: {"kind=k attempts=" + "2147483648"}, hdrMsgID: {"a-2"}},
		{HeaderKind: {"k"}, HeaderID: {"a-3"}, HeaderAttempts: {"9223372036854775807"}},
	} {
		_, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: q.subject, Header: h, Data: []byte{byte('0' + i)}})
		require.NoError(t, err)
	}
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "last", Kind: "k", Queue: qn}))
	var got []string
	require.Eventually(t, func() bool {
		lctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		ds, _ := b.Lease(lctx, qn, 10, 5*time.Second)
		cancel()
		for _, d := range ds {
			got = append(got, d.Task.ID+"@"+strconv.Itoa(d.Task.Attempt))
			require.NoError(t, b.Ack(ctx, d))
		}
		st, err := b.Stats(ctx, qn)
		return len(got) >= 2 && err == nil && st.Dead == 3
	}, 20*time.Second, 10*time.Millisecond, "the good tasks are delivered, the others dead-lettered: %v", &got)
	require.Equal(t, []string{"first@1", "last@1"}, got)
	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Len(t, dead, 3)
	for _, dl := range dead {
		require.Contains(t, dl.Reason, "not a task")
		require.Contains(t, strings.ToLower(dl.Reason), "attempts")
	}
}
