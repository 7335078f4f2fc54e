package imap_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/task"
)

// The holder of an exclusive mailbox emits; another host handles the
// tasks and completes them with its own copy of the source, which moves
// the mails. The holder's next reconcile pass finds them gone and ends
// them in flight, without emitting anything again.
func TestMessagesCompletedByAnotherHostLeaveTheInFlightSet(t *testing.T) {
	t.Parallel()
	b := setup(t, memserver.Options{}, nil)
	other := newSource(t, testConfig(b.srv.Host(), b.srv.Port()))
	appendN(t, b.srv, 1, 5)
	b.run(t)
	waitEmitted(t, b.em, 5)
	require.Equal(t, 5, b.src.Status().InFlight)
	for _, tk := range b.em.all() {
		complete(t, other, tk, task.Succeeded)
	}
	require.Len(t, messages(t, b.srv, "INBOX"), 0, "the other host moved every mail")
	require.Eventually(t, func() bool {
		st := b.src.Status()
		return st.InFlight == 0 && st.Gone == 5
	}, 10*time.Second, 20*time.Millisecond, "%+v", b.src.Status())
	require.Equal(t, 5, b.em.count(), "nothing emitted again")
	require.Zero(t, b.src.Status().Reconciled)
	require.Len(t, messages(t, b.srv, "Processed"), 5)
}
