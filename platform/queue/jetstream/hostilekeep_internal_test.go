package jetstream

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestForeignMessageKeepsItsHeadersInTheDeadLetter: the dead letter of a
// message that is not a task keeps every header it had, so that an
// operator can see, and publish again, what was sent: the Plba-Task that
// did not decode (whole, not only the 128 bytes the reason quotes), the
// Nats-Msg-Id and the other headers this package or the server own,
// each under "Plba-Foreign-" and its name, and every value of a header
// given more than once. They used to be dropped, and all but a header's
// first value.
func TestForeignMessageKeepsItsHeadersInTheDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{MaxDeliver: 3, AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "keepall"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "first", Kind: "k", Queue: qn}))
	q, err := b.queue(qn)
	require.NoError(t, err)
	bad := "kind=invoice.send key=" + strings.Repeat("k", 300) + " at=2026-13-01T00:00:00Z"
	h := nats.Header{HeaderTask: {bad}, hdrMsgID: {"by-hand-7"}, HeaderKind: {"legacy"}, "X-Multi": {"a", "b"}, "X-One": {"1"}}
	_, err = b.js.PublishMsg(ctx, &nats.Msg{Subject: q.subject, Header: h, Data: []byte("by hand")})
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		lctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		ds, _ := b.Lease(lctx, qn, 10, 5*time.Second)
		cancel()
		for _, d := range ds {
			require.NoError(t, b.Ack(ctx, d))
		}
		st, err := b.Stats(ctx, qn)
		return err == nil && st.Dead == 1 && st.Ready+st.InFlight+st.Delayed == 0
	}, 20*time.Second, 10*time.Millisecond)
	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	dl := dead[0]
	require.Equal(t, "?", dl.Task.Kind)
	require.Equal(t, "by hand", string(dl.Task.Payload))
	require.Equal(t, map[string]string{
		"Plba-Foreign-Plba-Task":      bad,
		"Plba-Foreign-Nats-Msg-Id":    "by-hand-7",
		"Plba-Foreign-Plba-Task-Kind": "legacy",
		"X-Multi":                     "a, b",
		"X-One":                       "1",
	}, dl.Task.Headers)
}
