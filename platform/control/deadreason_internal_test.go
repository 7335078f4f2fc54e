package control

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// Each id gets the part of a joined error that names it as a word of its
// own (not inside a longer id), else the last part; one error is every
// id's reason.
func TestReasonsNameEachIDsOwn(t *testing.T) {
	err := errors.Join(errors.New("redrive task a12 to \"q\": too large"),
		errors.New("redrive task a1 to \"q\": succeeded since"),
		errors.New("redrive task b to \"q\": stream full"))
	why := reasons(err)
	require.Equal(t, `redrive task a1 to "q": succeeded since`, why("a1"))
	require.Equal(t, `redrive task a12 to "q": too large`, why("a12"))
	require.Equal(t, `still a dead letter after the action: redrive task b to "q": stream full`, why("c"))
	require.Equal(t, "boom", reasons(errors.New("boom"))("a1"))
	require.Equal(t, "still a dead letter after the action", reasons(nil)("a1"))
}
