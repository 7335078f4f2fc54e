package imap_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/platform/task"
)

// A server without MOVE, and a dead letter re-driven and then
// successful: its mail is copied out of Failed (to Processed, or, in
// seen-only mode, back to the INBOX) and then deleted there. The
// connection lost once that COPY was sent, its answer with it, leaves one
// copy, not two: the retry looks for the copy, as a completion in the
// watched mailbox does, and, found, only deletes the original in Failed.
// It copied again: the mail twice where it belongs.
func TestDovecotCopyOutOfFailedCutOnceLeavesOneCopy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, folder string
		seenOnly     bool
	}{
		{"to processed", "Processed", false},
		{"seen-only", "INBOX", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := dovecottest.Start(t)
			require.NoError(t, d.Append("INBOX", imaptest.Message("1@failed-copy", "order", "x")))
			var armed, cut atomic.Bool
			var copies, seenStores atomic.Int32
			p := imaptest.NewProxyWith(t, d.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
				if armed.Load() && strings.Contains(line, "STORE") && strings.Contains(line, `\Seen`) {
					seenStores.Add(1)
				}
				if !armed.Load() || !strings.Contains(line, "UID COPY") {
					return false
				}
				copies.Add(1)
				if cut.CompareAndSwap(false, true) {
					c.Mute() // the COPY reaches the server; its answer is lost
					go func() { time.Sleep(200 * time.Millisecond); c.Close() }()
				}
				return false
			}})
			p.HideCapability("MOVE")
			cfg := dovecotConfig(d, imap.ModePoll)
			cfg.Host, cfg.Port = p.Host(), p.Port()
			if tc.seenOnly {
				cfg.OnSuccess.MoveTo = imap.Ptr("")
			}
			src := newSource(t, cfg)
			em := &fakeEmitter{}
			start(t, src, em)
			waitEmitted(t, em, 1)
			complete(t, src, em.all()[0], task.DeadLettered)
			require.Equal(t, 1, dovecotCount(t, d, "Failed"))

			armed.Store(true)
			complete(t, src, em.all()[0], task.Succeeded)
			ids, err := d.MessageIDs(tc.folder)
			require.NoError(t, err)
			require.Equal(t, []string{"1@failed-copy"}, ids, "one copy")
			require.True(t, cut.Load())
			require.EqualValues(t, 1, copies.Load(), "not copied again")
			require.EqualValues(t, 1, seenStores.Load(), "\\Seen stored once, not again with the original's delete")
			require.Zero(t, dovecotCount(t, d, "Failed"))
			st := src.Status()
			require.EqualValues(t, 1, st.CompletedOK)
			require.EqualValues(t, 1, st.CompletedFailed)
		})
	}
}

// As above, and while the connection is cut a second mail of the same
// content reaches the failed folder (the same mail delivered twice, both
// dead-lettered): the retry finds both there. Only the one the lost COPY
// copied has its copy in Processed: it alone is only deleted, the other
// is moved. Both were deleted, the second never copied: a mail lost.
func TestDovecotCopyOutOfFailedCutDeletesOnlyWhatItCopied(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	raw := imaptest.Message("1@failed-twice", "order", "x")
	require.NoError(t, d.Append("INBOX", raw))
	var armed, cut atomic.Bool
	var copies atomic.Int32
	arrived := make(chan error, 1)
	p := imaptest.NewProxyWith(t, d.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		if !armed.Load() || !strings.Contains(line, "UID COPY") {
			return false
		}
		copies.Add(1)
		if cut.CompareAndSwap(false, true) {
			c.Mute() // the COPY reaches the server; its answer is lost
			go func() {
				time.Sleep(200 * time.Millisecond)
				arrived <- d.Append("Failed", raw)
				c.Close()
			}()
		}
		return false
	}})
	p.HideCapability("MOVE")
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Host, cfg.Port = p.Host(), p.Port()
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 1)
	complete(t, src, em.all()[0], task.DeadLettered)
	require.Equal(t, 1, dovecotCount(t, d, "Failed"))

	armed.Store(true)
	complete(t, src, em.all()[0], task.Succeeded)
	require.NoError(t, <-arrived)
	ids, err := d.MessageIDs("Processed")
	require.NoError(t, err)
	require.Equal(t, []string{"1@failed-twice", "1@failed-twice"}, ids, "each mail of Failed once in Processed")
	require.EqualValues(t, 2, copies.Load(), "the second mail copied, the first not again")
	require.Zero(t, dovecotCount(t, d, "Failed"))
}
