package jetstream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// OpenTestBackend is openTestBackend for the package's external tests.
var OpenTestBackend = openTestBackend

// LeaseOne is leaseOne for the package's external tests.
var LeaseOne = leaseOne

// leaseOne leases one delivery of q (waiting up to 20 s for it), with a
// lease of 5 s.
func leaseOne(t *testing.T, b *Backend, q string) *queue.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ds, err := b.Lease(ctx, q, 1, 5*time.Second)
	require.NoError(t, err)
	require.Len(t, ds, 1)
	return ds[0]
}

// openTestBackend starts a backend from cfg and closes it when tb ends.
func openTestBackend(tb testing.TB, cfg Config) *Backend {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, Params{Config: cfg})
	require.NoError(tb, err)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// WorkSubject is the subject of queueName's work stream on b, for
// external tests that publish foreign messages there.
func WorkSubject(tb testing.TB, b *Backend, queueName string) string {
	tb.Helper()
	qn, err := b.names.forQueue(queueName)
	require.NoError(tb, err)
	return qn.subject
}

// WorkStream is the name of queueName's work stream on b.
func WorkStream(tb testing.TB, b *Backend, queueName string) string {
	tb.Helper()
	qn, err := b.names.forQueue(queueName)
	require.NoError(tb, err)
	return qn.stream
}

// termLost is a work message whose term does not reach the server (the
// connection lost at that moment).
type termLost struct{ jetstream.Msg }

func (termLost) Term() error                 { return errors.New("nats: connection closed") }
func (termLost) TermWithReason(string) error { return errors.New("nats: connection closed") }

// LoseTerm makes the term of d's message fail, as when the connection is
// lost at that moment.
func LoseTerm(d *queue.Delivery) {
	r := d.Receipt.(*receipt)
	r.mu.Lock()
	r.msg = termLost{r.msg}
	r.mu.Unlock()
}

// StoreDeadOnly does what DeadLetter does before its term (the dead
// letter, the key's marker), as a process that dies then; d stays
// unsettled.
func StoreDeadOnly(ctx context.Context, b *Backend, d *queue.Delivery, reason string) error {
	r := d.Receipt.(*receipt)
	if _, err := b.publishDead(ctx, r.q, r.del.Task, r.keyed, r.seq, r.attempt, reason); err != nil {
		return err
	}
	if r.keyed {
		return b.markDone(ctx, r.q, r.del.Task.Key, r.keyed, task.DeadLettered, reason)
	}
	return nil
}

// DoneMarker returns the data of the finished-key marker of d's key ("":
// none, or d's key is not remembered).
func DoneMarker(tb testing.TB, b *Backend, d *queue.Delivery) string {
	tb.Helper()
	r := d.Receipt.(*receipt)
	if !r.keyed {
		return ""
	}
	m, err := b.lastDone(tb.Context(), r.q.doneSubject(d.Task.Key, true))
	require.NoError(tb, err)
	return string(m.Data)
}

// LeaveDead claims the dead letter of queueName whose task has id as the
// other action running at the same time does: for a purge when redrive
// is set (the next Redrive of it leaves it, errPurgeBegun), else for a
// re-drive (the next Purge leaves it, errRedriveBegun).
func LeaveDead(t *testing.T, b *Backend, queueName, id string, redrive bool) {
	t.Helper()
	qn, err := b.names.forQueue(queueName)
	require.NoError(t, err)
	var found []deadMsg
	require.NoError(t, b.scanDead(t.Context(), qn, func(m deadMsg) bool {
		if m.dl.Task.ID == id {
			found = append(found, m)
		}
		return len(found) == 0
	}))
	require.Len(t, found, 1, "the dead letter of task %s of %q", id, queueName)
	kind := claimRedrive
	if redrive {
		kind = claimPurge
	}
	ok, err := b.claimDead(t.Context(), qn, found[0], kind)
	require.NoError(t, err)
	require.True(t, ok, "claimed for a %s", kind)
}
