package imap

import (
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// maxSearchUIDs bounds the UIDs of one search answer whatever the server
// says of its mailbox's size: 16 Mi UIDs, 64 MiB expanded.
const maxSearchUIDs = 1 << 24

// searchUIDs returns the UIDs of data, a UID SEARCH answer on c. A server
// answers with ranges (ESEARCH ALL), and one range can name four billion
// UIDs: expanded, 16 GB, the source stuck allocating them. An answer that
// names more UIDs than the selected mailbox can hold (twice the messages
// the server announced, and 1024 more, for mail announced late; at most
// maxSearchUIDs) is refused with an error, as an honest server never
// sends one.
func searchUIDs(c *imapclient.Client, data *imap.SearchData) ([]imap.UID, error) {
	set, ok := data.All.(imap.UIDSet)
	if !ok {
		return nil, nil
	}
	limit := uidLimit(c)
	var n uint64
	for _, r := range set {
		lo, hi := min(r.Start, r.Stop), max(r.Start, r.Stop)
		if lo == 0 { // "*": the library refuses it in a search answer already
			return nil, fmt.Errorf("search answered a set with *: %v", set)
		}
		if n += uint64(hi-lo) + 1; n > limit {
			return nil, fmt.Errorf("search answered more than %d UIDs (%v), more than the mailbox holds: refused", limit, set)
		}
	}
	return data.AllUIDs(), nil
}

// uidLimit is the most UIDs the mailbox selected on c can hold: twice
// the messages the server announced, and 1024 more, for mail announced
// late; at most maxSearchUIDs (all of them when none is selected).
func uidLimit(c *imapclient.Client) uint64 {
	limit := uint64(maxSearchUIDs)
	if c == nil {
		return limit
	}
	if mb := c.Mailbox(); mb != nil {
		limit = min(limit, 2*uint64(mb.NumMessages)+1024)
	}
	return limit
}
