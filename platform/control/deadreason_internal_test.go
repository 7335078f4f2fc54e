package control

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
)

// Each id gets the part of a joined error that is (or wraps) its
// queue.DeadLetterError, whatever the parts' text names; an id no part
// reports gets why the action stopped (the last part that is no
// DeadLetterError), else that it is still a dead letter; one error that is
// no DeadLetterError is every id's stop reason.
func TestReasonsFindEachIDsOwn(t *testing.T) {
	left := func(id, why string) error {
		return fmt.Errorf("redrive to \"q\": %w", &queue.DeadLetterError{ID: id, Err: errors.New(why)})
	}
	err := errors.Join(left("a12", "too large"), left("a1", "waits for a12 and b"), errors.New("redrive stopped at task b: stream full"))
	why := reasons(err)
	require.Equal(t, `redrive to "q": task a1: waits for a12 and b`, why("a1"))
	require.Equal(t, `redrive to "q": task a12: too large`, why("a12"))
	require.Equal(t, "not done, the action stopped: redrive stopped at task b: stream full", why("b"))
	require.Equal(t, "not done, the action stopped: redrive stopped at task b: stream full", why("c"))

	why = reasons(errors.Join(left("a", "its own"), left("c", "c's own")))
	require.Equal(t, "still a dead letter after the action", why("b"))
	require.Equal(t, `redrive to "q": task a: its own`, reasons(left("a", "its own"))("a"))
	require.Equal(t, "not done, the action stopped: boom", reasons(errors.New("boom"))("a1"))
	require.Equal(t, "still a dead letter after the action", reasons(nil)("a1"))
}
