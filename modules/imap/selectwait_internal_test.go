package imap

import (
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
)

// TestSelectWaitLeavesTheClientNamingTheMailbox: after selectWait the
// client's Mailbox names the mailbox just selected, with its messages, so
// that uidLimit budgets by it. go-imap ends Select's Wait before it
// records the mailbox; a read right after found none (or the one
// selected before) now and then, and a UID SEARCH of a mailbox of two
// messages was given the largest budget, 192 MiB (a CI run under the race
// detector: TestHugeSearchAnswerIsBounded grew the heap by 635 MiB).
func TestSelectWaitLeavesTheClientNamingTheMailbox(t *testing.T) {
	srv := imaptest.NewServer(t, memserver.Options{Mailboxes: []string{"Other"}})
	_, err := srv.Append("INBOX", []byte("Subject: a\r\n\r\nbody\r\n"))
	require.NoError(t, err)
	c, err := imapclient.DialInsecure(srv.Addr(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Login(imaptest.Username, imaptest.Password).Wait())
	missed := 0
	for i := range 400 {
		name := []string{"INBOX", "Other"}[i%2]
		_, err := selectWait(c, name, nil)
		require.NoError(t, err)
		if mb := c.Mailbox(); mb == nil || mb.Name != name {
			missed++
		}
	}
	require.Zero(t, missed, "selects after which the client named no mailbox or another")
	_, err = selectWait(c, "INBOX", nil)
	require.NoError(t, err)
	require.Equal(t, uint64(2*1+1024), uidLimit(c), "the limit of a mailbox of one message")
}
