package imap_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/platform/task"
)

// A server without MOVE: the completion's COPY reaches Dovecot, which
// copies the mail to Processed, and its answer is lost with the
// connection; then the store of Processed fails for a few seconds while
// the retry looks there for the copy by content (copiesFound,
// findByContent, fetchCarefully), the Message-ID answered from Dovecot's
// cache, the envelope and the body not. The copy, the only mail the
// search finds, was set aside after RefusedSessionsBeforeSetAside drops
// over Reconnect.Max: not found once the store was back, the mail was
// copied again, and Processed held it twice. With another mail in
// Processed its body fails too (nothing counted); alone, its drops count
// over RefusalSpan, longer than the outage. Either way the copy is found
// once the store is back and only the original is deleted: one copy.
func TestDovecotCopyLookupOutage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		other bool // Processed holds another mail, to prove against
	}{
		{"control", true},
		{"alone", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := dovecottest.Start(t)
			mail := imaptest.Message("1@copyout", "order", "1@copyout")
			require.NoError(t, d.Save("INBOX", mail)) // UID 1
			before := 0
			if tc.other {
				require.NoError(t, d.Append("Processed", imaptest.Message("2@other", "order", "2@other")))
				before = 1
			}
			var armed atomic.Bool
			var copies atomic.Int32
			copying := make(chan *imaptest.Conn, 1)
			p := imaptest.NewProxyWith(t, d.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
				if _, name, _ := command(line); name != "UID COPY" || !armed.Load() {
					return false
				}
				if copies.Add(1) == 1 {
					c.Mute() // the COPY reaches the server; its answer is lost
					copying <- c
				}
				return false
			}})
			p.HideCapability("MOVE")
			cfg := dovecotConfig(d, imap.ModePoll)
			cfg.Host, cfg.Port = p.Host(), p.Port()
			cfg.Reconnect = imap.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
			cfg.RefusalSpan = time.Minute // the outage is shorter (see completion_poison.go)
			src := newSource(t, cfg)      // not run: only its completions
			tk := &task.Task{Key: "k", Payload: mail, Headers: map[string]string{
				imap.HeaderMessageID: "1@copyout", imap.HeaderUID: "1",
				imap.HeaderUIDValidity: strconv.FormatUint(uint64(uidValidity(t, d, "INBOX")), 10),
			}}
			ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
			defer cancel()
			armed.Store(true)
			require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))

			var conn *imaptest.Conn
			select {
			case conn = <-copying:
			case <-ctx.Done():
				t.Fatalf("no COPY sent: status %+v", src.Status())
			}
			// The COPY made (STATUS: no envelope fetched, so none
			// cached), and the copy's Message-ID in Dovecot's cache
			// (looked for before): the search is answered while the
			// store fails, the envelope and the body are not.
			c, err := d.Dial()
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				st, err := c.Status("Processed", &goimap.StatusOptions{NumMessages: true}).Wait()
				return err == nil && st.NumMessages != nil && int(*st.NumMessages) == before+1
			}, 10*time.Second, 20*time.Millisecond, "the COPY made")
			_, err = c.Select("Processed", nil).Wait()
			require.NoError(t, err)
			found, err := c.UIDSearch(&goimap.SearchCriteria{Header: []goimap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: "1@copyout"}}}, nil).Wait()
			require.NoError(t, err)
			require.Len(t, found.AllUIDs(), 1)
			require.NoError(t, c.Logout().Wait())
			restore := storeFails(t, d, "Processed")
			failures := src.Status().CompletionFailures
			conn.Close()

			// Attempts enough, over a span long enough, to set the copy
			// aside were the drops counted.
			began := time.Now()
			require.Eventually(t, func() bool {
				st := src.Status()
				return st.CompletionSetAside > 0 ||
					st.CompletionFailures > failures+4*imap.RefusedSessionsBeforeSetAside && time.Since(began) > 10*cfg.Reconnect.Max
			}, 25*time.Second, 10*time.Millisecond)
			require.Zero(t, src.Status().CompletionSetAside, "the copy set aside while the store failed")

			restore()
			require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())
			ids, err := d.MessageIDs("Processed")
			require.NoError(t, err)
			require.Equal(t, 1, strings.Count(strings.Join(ids, " "), "1@copyout"), "one copy in Processed: %v", ids)
			require.Equal(t, before+1, len(ids), "Processed: %v", ids)
			require.Zero(t, dovecotCount(t, d, "INBOX"), "the original deleted")
			require.EqualValues(t, 1, copies.Load(), "not copied again")
			st := src.Status()
			require.EqualValues(t, 1, st.CompletedOK)
			require.Zero(t, st.CompletionSetAside)
		})
	}
}
