package jetstream

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestForeignMessagesGoToTheDeadLetter: messages on a queue's subject that
// are not tasks (published by someone else, or damaged) are never
// delivered; each lands in the dead letter with its reason and its
// payload, and the tasks around them are delivered as usual.
func TestForeignMessagesGoToTheDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{Mode: ModeEmbedded, MaxDeliver: 3, AckWait: 5 * time.Second,
		Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const q = "foreign"
	var toldMu sync.Mutex
	told := map[string]bool{} // payloads the WatchDead function heard of
	b.WatchDead(func(dl queue.DeadLetter) {
		toldMu.Lock()
		told[string(dl.Task.Payload)] = true
		toldMu.Unlock()
	})
	first := &task.Task{Kind: "k", Queue: q, Payload: []byte("first")}
	require.NoError(t, b.Enqueue(ctx, first)) // creates the queue's stream
	qn, err := b.names.forQueue(q)
	require.NoError(t, err)

	bad := []struct {
		payload string
		header  nats.Header
		reason  string
	}{
		{"no headers at all", nil, "missing"},
		{"no kind", nats.Header{HeaderID: {"x-1"}}, "missing"},
		{"bad time", nats.Header{HeaderID: {"x-2"}, HeaderKind: {"k"}, HeaderEnqueuedAt: {"yesterday"}}, `bad Plba-Task-Enqueued-At "yesterday"`},
		{"bad attempts", nats.Header{HeaderID: {"x-3"}, HeaderKind: {"k"}, HeaderAttempts: {"-4"}}, `bad Plba-Task-Attempts "-4"`},
		{"bad time, one header", nats.Header{HeaderTask: {"kind=k at=yesterday"}, hdrMsgID: {"x-4"}}, `bad Plba-Task "kind=k at=yesterday": field at`},
		{"no kind, one header", nats.Header{HeaderTask: {"id=x-5"}}, "no kind"},
		{"bad escape", nats.Header{HeaderTask: {"kind=%zz"}, hdrMsgID: {"x-6"}}, `bad escape "%zz"`},
		{"escaped line break", nats.Header{HeaderTask: {"kind=k key=a%0D%0AInjected:%20x"}, hdrMsgID: {"x-7"}}, "line break"},
	}
	for _, m := range bad {
		_, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: qn.subject, Header: m.header, Data: []byte(m.payload)})
		require.NoError(t, err)
	}
	last := &task.Task{Kind: "k", Queue: q, Payload: []byte("last")}
	require.NoError(t, b.Enqueue(ctx, last))

	var got []string
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		ds, err := b.Lease(lctx, q, 10, 5*time.Second)
		cancel()
		if err != nil && lctx.Err() == nil {
			require.NoError(t, err)
		}
		for _, d := range ds {
			got = append(got, string(d.Task.Payload))
			require.NoError(t, b.Ack(ctx, d))
		}
	}
	require.Equal(t, []string{"first", "last"}, got, "only the tasks are delivered, in order")

	var dead map[string]string
	require.Eventually(t, func() bool {
		dls, err := b.ListDead(ctx, q, 10)
		if err != nil || len(dls) != len(bad) {
			return false
		}
		dead = map[string]string{}
		for _, dl := range dls {
			dead[string(dl.Task.Payload)] = dl.Reason
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "every foreign message is dead-lettered")
	require.Eventually(t, func() bool {
		toldMu.Lock()
		defer toldMu.Unlock()
		return len(told) == len(bad)
	}, 10*time.Second, 20*time.Millisecond, "the watcher hears of every dead letter the backend made on its own")
	for _, m := range bad {
		require.Contains(t, dead, m.payload)
		require.Contains(t, dead[m.payload], "not a task", m.payload)
		require.Contains(t, dead[m.payload], m.reason, m.payload)
	}
	// Acks and terminations reach the stream asynchronously.
	require.Eventually(t, func() bool {
		st, err := b.Stats(ctx, q)
		return err == nil && st.Ready+st.InFlight+st.Delayed == 0 && st.Dead == int64(len(bad))
	}, 10*time.Second, 20*time.Millisecond, "nothing left on the queue, every foreign message in the dead letter")
}
