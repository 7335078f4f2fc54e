package jetstream

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// TestRedriveLeavesADeadLetterThatIsNotATask: a message in the
// dead-letter stream that does not decode as a dead letter (published
// there with nats pub, or damaged) is listed as "dead-seq-<n>" of kind "?"
// with the decoding error as its reason; Redrive leaves it as it is and
// says why, and re-drives the others; Purge deletes it. Redrive used to
// publish it to the queue as a task without a kind, its headers dropped,
// and delete it: the copy was undecodable in turn and dead-lettered
// again as a stand-in that had lost what the stored one had.
func TestRedriveLeavesADeadLetterThatIsNotATask(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{MaxDeliver: 3, AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "deadjunk"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "good", Kind: "k", Queue: qn}))
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	ds, err := b.Lease(lctx, qn, 1, 5*time.Second)
	cancel()
	require.NoError(t, err)
	require.NoError(t, b.DeadLetter(ctx, ds[0], "failed"))
	q, err := b.queue(qn)
	require.NoError(t, err)
	junk := &nats.Msg{Subject: q.deadSubject, Header: nats.Header{"X-Origin": {"nats pub"}, HeaderTask: {"kind=%zz"}}, Data: []byte("junk")}
	ack, err := b.js.PublishMsg(ctx, junk)
	require.NoError(t, err)
	junkID := "dead-seq-" + strconv.FormatUint(ack.Sequence, 10)

	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Len(t, dead, 2)
	require.Equal(t, junkID, dead[1].Task.ID)
	require.Equal(t, "?", dead[1].Task.Kind, "listed as QueryDead lists it")
	require.Contains(t, dead[1].Reason, "bad escape")

	n, err := b.Redrive(ctx, qn)
	require.ErrorIs(t, err, errNotADeadLetter)
	left, stop := leftAndStop(err)
	require.Equal(t, []string{junkID}, left, "reported with its own queue.DeadLetterError")
	require.NoError(t, stop)
	require.Equal(t, 1, n, "the good dead letter is re-driven")
	lctx, cancel = context.WithTimeout(ctx, 20*time.Second)
	ds, err = b.Lease(lctx, qn, 10, 5*time.Second)
	cancel()
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, "good", ds[0].Task.ID)
	require.NoError(t, b.Ack(ctx, ds[0]))

	raw, err := b.dead.GetMsg(ctx, ack.Sequence)
	require.NoError(t, err, "the junk is left where it was")
	require.Equal(t, "nats pub", raw.Header.Get("X-Origin"))
	require.Equal(t, "junk", string(raw.Data))

	n, err = b.Purge(ctx, qn, junkID)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	dead, err = b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Empty(t, dead)
}

// TestRedriveSkipsADeadLetterItCannotCopy: a dead letter whose re-driven
// copy the server would refuse (stored by someone else: an id of 33 KiB,
// which the copy writes twice, past the 64 KiB of headers JetStream
// stores) is left and named in the error (queue.ErrTooLarge), and the
// dead letters after it are re-driven. Redrive used to stop at its
// refused publish, so no Redrive of the queue ever got past it.
func TestRedriveSkipsADeadLetterItCannotCopy(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{MaxDeliver: 3, AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "deadbig"
	require.NoError(t, b.Enqueue(ctx, &task.Task{ID: "good", Kind: "k", Queue: qn}))
	q, err := b.queue(qn)
	require.NoError(t, err)
	bigID := strings.Repeat("i", 33<<10)
	big := encodeDead(&task.Task{ID: bigID, Kind: "k", Queue: qn}, q.deadSubject, "dead-by-hand-1", true, deadInfo{reason: "by hand", at: time.Now(), attempts: 1})
	_, err = b.js.PublishMsg(ctx, big)
	require.NoError(t, err, "the dead letter itself is stored")
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	ds, err := b.Lease(lctx, qn, 1, 5*time.Second)
	cancel()
	require.NoError(t, err)
	require.NoError(t, b.DeadLetter(ctx, ds[0], "failed"))

	n, err := b.Redrive(ctx, qn)
	require.ErrorIs(t, err, queue.ErrTooLarge)
	require.Equal(t, 1, n, "the dead letter after it is re-driven")
	left, stop := leftAndStop(err)
	require.Equal(t, []string{bigID}, left, "reported with its own queue.DeadLetterError")
	require.NoError(t, stop)
	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, bigID, dead[0].Task.ID, "left as it was")
	lctx, cancel = context.WithTimeout(ctx, 20*time.Second)
	ds, err = b.Lease(lctx, qn, 10, 5*time.Second)
	cancel()
	require.NoError(t, err)
	require.Equal(t, "good", ds[0].Task.ID)
}

// TestStandInsOfTheTwoStreamsDoNotShareAnID: a message of the work stream
// that is not a task is dead-lettered as "seq-<n>", n its sequence in the
// work stream; a message of the dead-letter stream that is not a dead
// letter is listed as "dead-seq-<n>", n its sequence there. Both used to
// be "seq-<n>": with equal sequences, two dead letters shared one id, and
// a Purge or Redrive of one by its id took the other too.
func TestStandInsOfTheTwoStreamsDoNotShareAnID(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := openTestBackend(t, Config{AckWait: 5 * time.Second, Embedded: embedded.Config{StoreDir: t.TempDir()}})
	const qn = "twins"
	require.NoError(t, b.Declare(ctx, qn))
	q, err := b.queue(qn)
	require.NoError(t, err)
	junk, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: q.deadSubject, Header: nats.Header{HeaderTask: {"kind=%zz"}}, Data: []byte("junk")})
	require.NoError(t, err)
	foreign, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: q.subject, Data: []byte("not a task")})
	require.NoError(t, err)
	require.Equal(t, junk.Sequence, foreign.Sequence, "the same sequence in both streams")
	require.Eventually(t, func() bool {
		lctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, _ = b.Lease(lctx, qn, 1, time.Second) // dead-letters the foreign message
		st, err := b.Stats(ctx, qn)
		return err == nil && st.Dead == 2
	}, 20*time.Second, 10*time.Millisecond)

	dead, err := b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Len(t, dead, 2)
	ids := []string{dead[0].Task.ID, dead[1].Task.ID}
	seq := strconv.FormatUint(junk.Sequence, 10)
	require.ElementsMatch(t, []string{"dead-seq-" + seq, "seq-" + seq}, ids)
	n, err := b.Purge(ctx, qn, "seq-"+seq)
	require.NoError(t, err)
	require.Equal(t, 1, n, "only the foreign message's dead letter")
	dead, err = b.ListDead(ctx, qn, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, "junk", string(dead[0].Task.Payload))
}
