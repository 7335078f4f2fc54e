package imap

import (
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// selectWaitMax bounds how long selectWait waits for the client to record
// the mailbox a SELECT selected.
const selectWaitMax = time.Second

// selectWait selects mailbox on c and returns once the client's own state
// names it. go-imap (v2.0.0-beta.8) ends a Select's Wait before it records
// the selected mailbox: completeCommand signals the command done, then
// sets what Mailbox returns. Read right after, Mailbox could be nil, or
// the mailbox selected before, and uidLimit, which budgets the answers
// that grow with the mailbox (meter.go), took the largest limit (192 MiB)
// for a mailbox of two messages. Within selectWaitMax at most (a
// goroutine of the client's about to take a lock); after that, the
// SELECT's own answer stands and the limits are the lenient ones.
func selectWait(c *imapclient.Client, mailbox string, opts *imap.SelectOptions) (*imap.SelectData, error) {
	sel, err := c.Select(mailbox, opts).Wait()
	if err != nil {
		return sel, err
	}
	deadline := time.Now().Add(selectWaitMax)
	for {
		if mb := c.Mailbox(); mb != nil && mb.Name == mailbox {
			return sel, nil
		}
		if time.Now().After(deadline) {
			return sel, nil
		}
		time.Sleep(100 * time.Microsecond)
	}
}
