package jetstream

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestForeignMessageTooLargeToCopyIsDeadLettered: a message that is not a
// task and so large that its dead-letter copy cannot fit the server's
// max_payload (published with nats pub, which leaves no room for the
// copy's headers as Enqueue does) is dead-lettered without its payload,
// the reason saying so and how large it was; Redrive leaves that dead
// letter (re-driven, it would run without its payload) and says why.
// Its copy used to fail on every delivery and then, once the server gave
// up on it, every second for ever: never dead-lettered, the watcher
// never told, the queue's Stats showing it as delayed.
func TestForeignMessageTooLargeToCopyIsDeadLettered(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{MaxDeliver: 2, AckWait: 2 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	var mu sync.Mutex
	var told []queue.DeadLetter
	b.WatchDead(func(dl queue.DeadLetter) {
		mu.Lock()
		told = append(told, dl)
		mu.Unlock()
	})
	const qn = "toolarge"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "first", Kind: "k", Queue: qn}))
	q, err := b.queue(qn)
	require.NoError(t, err)
	big := make([]byte, b.MaxPayload()-100)
	_, err = b.js.PublishMsg(ctx, &nats.Msg{Subject: q.subject, Header: nats.Header{"X-Origin": {"nats pub"}}, Data: big})
	require.NoError(t, err)
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "last", Kind: "k", Queue: qn}))

	var got []string
	require.Eventually(t, func() bool {
		lctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		ds, _ := b.Lease(lctx, qn, 10, 5*time.Second)
		cancel()
		for _, d := range ds {
			got = append(got, d.Task.ID)
			require.NoError(t, b.Ack(ctx, d))
		}
		st, err := b.Stats(ctx, qn)
		return len(got) == 2 && err == nil && st.Dead == 1 && st.Ready+st.InFlight+st.Delayed == 0
	}, 20*time.Second, 10*time.Millisecond, "the tasks are delivered, the foreign message is dead-lettered and leaves the queue")
	require.Equal(t, []string{"first", "last"}, got)

	dead, err := b.QueryDead(ctx, qn, queue.DeadQuery{WithPayload: true})
	require.NoError(t, err)
	require.Len(t, dead.Items, 1)
	dl := dead.Items[0]
	require.Equal(t, "?", dl.Task.Kind)
	require.Contains(t, dl.Reason, "not a task")
	require.Contains(t, dl.Reason, fmt.Sprintf("payload of %d bytes is not kept", len(big)))
	require.Empty(t, dl.Task.Payload)
	require.Equal(t, "nats pub", dl.Task.Headers["X-Origin"], "what fits is kept")
	mu.Lock()
	require.Len(t, told, 1, "the watcher is told once")
	require.Equal(t, dl.Reason, told[0].Reason, "as stored")
	mu.Unlock()

	n, err := b.Redrive(ctx, qn)
	require.ErrorIs(t, err, errNotKept)
	require.ErrorContains(t, err, "does not keep its payload")
	require.Equal(t, 0, n)
	left, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Len(t, left, 1, "the dead letter stays")
}

// TestFitDeadDropsHeadersWhenThePayloadIsNotEnough: a dead-letter copy
// that is too large without its payload drops its task's headers too,
// and says so.
func TestFitDeadDropsHeadersWhenThePayloadIsNotEnough(t *testing.T) {
	t.Parallel()
	tk := &task.Task{ID: "seq-3", Kind: "?", Queue: "q", Payload: make([]byte, 10),
		Headers: map[string]string{"X-Huge": string(make([]byte, 2000))}}
	m, d := fitDead(tk, "s", "dead-S-3", false, deadInfo{reason: "not a task", at: time.Now(), attempts: 1}, 1500)
	require.LessOrEqual(t, msgSize(m), int64(1500))
	require.Equal(t, "payload headers", m.Header.Get(HeaderDeadDropped))
	require.Contains(t, d.reason, "its payload of 10 bytes and its headers are not kept")
	require.Equal(t, d.reason, m.Header.Get(HeaderDeadReason))
	require.Empty(t, m.Header.Get("X-Huge"))
	require.Len(t, tk.Payload, 10, "the task itself is left as it was")
	require.Len(t, tk.Headers, 1)
}
