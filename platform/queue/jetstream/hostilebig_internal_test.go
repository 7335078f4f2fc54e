package jetstream

import (
	"context"
	"fmt"
	"strings"
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

// TestFitDeadKeepsWhatFits: a dead-letter copy that is too large drops
// its task's payload, or its headers, or both, whichever is the least
// that fits, and says so.
func TestFitDeadKeepsWhatFits(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		payload, header int
		dropped, note   string
	}{
		{1400, 10, "payload", "its payload of 1400 bytes is not kept"},
		{10, 1400, "headers", "its headers are not kept"},
		{1400, 1400, "payload headers", "its payload of 1400 bytes and its headers are not kept"},
	} {
		tk := &task.Task{ID: "seq-3", Kind: "?", Queue: "q", Payload: make([]byte, c.payload),
			Headers: map[string]string{"X-Big": strings.Repeat("h", c.header)}}
		m, d := fitDead(tk, "s", "dead-S-3", false, deadInfo{reason: "not a task", at: time.Now(), attempts: 1}, 1500)
		require.LessOrEqual(t, msgSize(m), int64(1500))
		require.Equal(t, c.dropped, m.Header.Get(HeaderDeadDropped))
		require.Contains(t, d.reason, c.note)
		require.Equal(t, d.reason, m.Header.Get(HeaderDeadReason))
		require.Equal(t, c.dropped != "headers", len(m.Data) == 0, c.dropped)
		require.Equal(t, c.dropped != "payload", m.Header.Get("X-Big") == "", c.dropped)
		require.Len(t, tk.Payload, c.payload, "the task itself is left as it was")
		require.Len(t, tk.Headers, 1)
	}
}

// TestForeignMessageWithHeadersTooLargeToCopyIsDeadLettered: a message
// that is not a task whose headers are near the 64 KiB JetStream allows
// a message's headers is dead-lettered without them (its copy adds the
// dead letter's own), the reason saying so. Its copy used to be refused
// ("header size exceeds maximum allowed of 64k") every time, as
// TestForeignMessageTooLargeToCopyIsDeadLettered's for the payload.
func TestForeignMessageWithHeadersTooLargeToCopyIsDeadLettered(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{MaxDeliver: 2, AckWait: 2 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "bighdr"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "first", Kind: "k", Queue: qn}))
	q, err := b.queue(qn)
	require.NoError(t, err)
	h := nats.Header{"X-Big": {strings.Repeat("h", maxHeaderBlock-200)}}
	_, err = b.js.PublishMsg(ctx, &nats.Msg{Subject: q.subject, Header: h, Data: []byte("payload")})
	require.NoError(t, err, "the server stores it")
	require.Eventually(t, func() bool {
		lctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		ds, _ := b.Lease(lctx, qn, 10, 5*time.Second)
		cancel()
		for _, d := range ds {
			require.NoError(t, b.Ack(ctx, d))
		}
		st, err := b.Stats(ctx, qn)
		return err == nil && st.Dead == 1 && st.Ready+st.InFlight+st.Delayed == 0
	}, 20*time.Second, 10*time.Millisecond, "dead-lettered, the queue empty")
	dead, err := b.QueryDead(ctx, qn, queue.DeadQuery{WithPayload: true})
	require.NoError(t, err)
	require.Len(t, dead.Items, 1)
	require.Contains(t, dead.Items[0].Reason, "its headers are not kept")
	require.Equal(t, "payload", string(dead.Items[0].Task.Payload), "the payload is kept")
	require.Empty(t, dead.Items[0].Task.Headers)
}

// TestEnqueueRefusesHeadersTooLargeForADeadLetter: Enqueue refuses a task
// whose headers leave no room, within the 64 KiB JetStream allows a
// message's headers, for its dead-letter copy's (queue.ErrTooLarge).
// Such a task was stored and could never be dead-lettered; one whose
// headers passed 64 KiB was refused by the server with an API error
// (the control API answered 500).
func TestEnqueueRefusesHeadersTooLargeForADeadLetter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{MaxDeliver: 2, AckWait: 2 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	for _, tk := range []*task.Task{
		{Kind: "k", Queue: "hdr", Headers: map[string]string{"X-Big": strings.Repeat("h", maxHeaderBlock-1000)}},
		{Kind: "k", Queue: "hdr", Key: strings.Repeat("k", 100<<10)},
	} {
		err := b.Enqueue(ctx, tk)
		require.ErrorIs(t, err, queue.ErrTooLarge)
		require.ErrorContains(t, err, "headers")
	}
	st, err := b.Stats(ctx, "hdr")
	require.NoError(t, err)
	require.Zero(t, st.Ready)
	ok := &task.Task{Kind: "k", Queue: "hdr", Headers: map[string]string{"X-Big": strings.Repeat("h", maxHeaderBlock-deadLetterRoom-1000)}}
	require.NoError(t, b.Enqueue(ctx, ok), "headers that leave the room are fine")
}
