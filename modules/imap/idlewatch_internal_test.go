package imap

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// fired reports whether w fired (and clears it).
func fired(w *idleWatch) bool {
	select {
	case <-w.ended:
		return true
	default:
		return false
	}
}

// feed writes each chunk to w, as the client's debug writer gets them.
func feed(t *testing.T, w *idleWatch, chunks ...string) {
	t.Helper()
	for _, c := range chunks {
		n, err := w.Write([]byte(c))
		require.NoError(t, err)
		require.Equal(t, len(c), n)
	}
}

// The IDLE watch fires at a tagged status response or a BYE during an
// IDLE, wherever the reads split the lines, and at nothing else: the
// client's own IDLE line, the continuation, untagged data, a line inside
// a literal, the answer to the client's own DONE, or anything while
// disarmed.
func TestIdleWatchFiresAtTheServersEndOnly(t *testing.T) {
	t.Parallel()
	w := newIdleWatch()
	feed(t, w, "T3 OK SEARCH done\r\n", "* BYE bye\r\n") // disarmed
	require.False(t, fired(w))

	w.arm()
	feed(t, w, "T4 IDLE\r\n", "+ idling\r\n", "* 3 EXI", "STS\r\n* 1 RECENT\r\n* OK Still here\r\n")
	require.False(t, fired(w))
	feed(t, w, "* 2 FETCH (FLAGS (\\Seen) BODY[] {12}\r\nT4 OK fake\r\n)\r\n")
	require.False(t, fired(w), "a line inside a literal is no response")
	feed(t, w, "* 2 FETCH (BODY[] {1", "2}\r\nT4 OK ", "fake\r\n)\r\n")
	require.False(t, fired(w), "nor when the reads split the literal's size")
	feed(t, w, "DONE\r\n", "T4 OK Idle completed\r\n", "T5 IDLE\r\n", "+ idling\r\n")
	require.False(t, fired(w), "the client renewed the IDLE itself")
	feed(t, w, "T5", " ok IDLE terminated\r\n")
	require.True(t, fired(w))
	require.Equal(t, "OK", w.reason())

	for _, end := range []string{"T9 NO [LIMIT] too long\r\n", "T9 BAD idle\r\n", "* BYE Autologout\r\n"} {
		w.arm()
		require.False(t, fired(w), "arm forgets the last end")
		feed(t, w, "T9 IDLE\r\n+ idling\r\n", end)
		require.True(t, fired(w), end)
	}
	require.Equal(t, "BYE", w.reason())

	w.disarm()
	feed(t, w, "T10 OK done\r\n")
	require.False(t, fired(w))
}
