package imap_test

import (
	"context"
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

// A server without MOVE: the completion copies the mail, then deletes
// the original. The connection lost once the COPY was sent (before its
// answer, or before the STORE \Deleted reached the server) leaves one
// copy in the folder, not two: the retry looks for the copy there and,
// found, only deletes the original (its \Seen stored once, before the
// COPY: not stored again on the retry). It copied again, and Processed
// (or Failed) held the mail twice.
func TestDovecotCopyCutOnceLeavesOneCopy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, cutAt string
		drop        bool // the command does not reach the server
		outcome     task.Outcome
		folder      string
	}{
		{"copy ok", "UID COPY", false, task.Succeeded, "Processed"},
		{"copy dead", "UID COPY", false, task.DeadLettered, "Failed"},
		{"delete ok", `(\Deleted)`, true, task.Succeeded, "Processed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := dovecottest.Start(t)
			require.NoError(t, d.Append("INBOX", imaptest.Message("1@copy", "order", "x")))
			var armed, cut atomic.Bool
			var copies, seenStores atomic.Int32
			p := imaptest.NewProxyWith(t, d.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
				if strings.Contains(line, "UID COPY") {
					copies.Add(1)
				}
				if armed.Load() && strings.Contains(line, "STORE") && strings.Contains(line, `\Seen`) {
					seenStores.Add(1)
				}
				if armed.Load() && strings.Contains(line, tc.cutAt) && cut.CompareAndSwap(false, true) {
					if tc.drop {
						c.Close()
						return true
					}
					c.Mute() // the command reaches the server; its answer is lost
					go func() { time.Sleep(200 * time.Millisecond); c.Close() }()
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
			armed.Store(true)
			complete(t, src, em.all()[0], tc.outcome)

			ids, err := d.MessageIDs(tc.folder)
			require.NoError(t, err)
			require.Equal(t, []string{"1@copy"}, ids, "one copy")
			require.True(t, cut.Load())
			require.EqualValues(t, 1, copies.Load(), "not copied again")
			if tc.outcome == task.Succeeded {
				require.EqualValues(t, 1, seenStores.Load(), "\\Seen stored once, not again with the original's delete")
			}
			require.Zero(t, dovecotCount(t, d, "INBOX"))
			st := src.Status()
			require.EqualValues(t, 1, st.CompletedOK+st.CompletedFailed)
		})
	}
}

// A COPY cut before it reached the server copied nothing, whatever the
// folder already holds: a mail there of the same content (the stand-in's
// Message-ID and size; the same bytes, copied back to the mailbox by a
// person) is not the copy. The retry took it for the copy and deleted the
// original without copying it: the oversized mail lost, or one of two
// left.
func TestDovecotCopyDroppedIsNotFoundInOlderMail(t *testing.T) {
	t.Parallel()
	big := func(fill string) []byte { return imaptest.Message("1@same", "order", strings.Repeat(fill, 3000)) }
	for _, tc := range []struct {
		name        string
		inbox, kept []byte
		outcome     task.Outcome
		folder      string
	}{
		{"stand-in", big("a"), big("b"), task.DeadLettered, "Failed"},
		{"same bytes", big("a"), big("a"), task.Succeeded, "Processed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := dovecottest.Start(t)
			require.NoError(t, d.Append(tc.folder, tc.kept))
			require.NoError(t, d.Append("INBOX", tc.inbox))
			var armed, cut atomic.Bool
			p := imaptest.NewProxyWith(t, d.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
				if armed.Load() && strings.Contains(line, "UID COPY") && cut.CompareAndSwap(false, true) {
					c.Close() // the COPY does not reach the server
					return true
				}
				return false
			}})
			p.HideCapability("MOVE")
			cfg := dovecotConfig(d, imap.ModePoll)
			cfg.Host, cfg.Port = p.Host(), p.Port()
			if tc.outcome == task.DeadLettered {
				cfg.MaxMessageSize = 1000 // its stand-in is emitted
			}
			src := newSource(t, cfg)
			em := &fakeEmitter{}
			start(t, src, em)
			waitEmitted(t, em, 1)
			armed.Store(true)
			complete(t, src, em.all()[0], tc.outcome)

			require.True(t, cut.Load())
			require.Equal(t, 2, dovecotCount(t, d, tc.folder), "the mail copied, beside the older one")
			require.Zero(t, dovecotCount(t, d, "INBOX"))
		})
	}
}

// A MOVE whose answer is lost with the connection moved the mail: the
// retry finds it gone from the mailbox and counts it moved (completed_ok
// or completed_failed), not completed_again.
func TestDovecotMoveAnswerLostCountsMoved(t *testing.T) {
	t.Parallel()
	for _, o := range []task.Outcome{task.Succeeded, task.DeadLettered} {
		t.Run(string(o), func(t *testing.T) {
			t.Parallel()
			d := dovecottest.Start(t)
			require.NoError(t, d.Append("INBOX", imaptest.Message("1@lost", "order", "x")))
			var armed, cut atomic.Bool
			p := imaptest.NewProxyWith(t, d.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
				if armed.Load() && strings.Contains(line, "UID MOVE") && cut.CompareAndSwap(false, true) {
					c.Mute() // the MOVE reaches the server; its answer is lost
					go func() { time.Sleep(200 * time.Millisecond); c.Close() }()
				}
				return false
			}})
			cfg := dovecotConfig(d, imap.ModePoll)
			cfg.Host, cfg.Port = p.Host(), p.Port()
			src := newSource(t, cfg)
			em := &fakeEmitter{}
			start(t, src, em)
			waitEmitted(t, em, 1)
			armed.Store(true)
			complete(t, src, em.all()[0], o)

			require.True(t, cut.Load())
			require.Zero(t, dovecotCount(t, d, "INBOX"))
			st := src.Status()
			require.EqualValues(t, 1, st.CompletedOK+st.CompletedFailed)
			require.Zero(t, st.CompletedAgain)
		})
	}
}

// A COPY whose answer was lost names the messages it copied by their
// UIDs under the mailbox's UIDVALIDITY then. The mailbox created again
// before the retry gives those UIDs to other mail: here the dead
// letter's, applied in the same batch, took the UID the success's mail
// had when it was copied, and was deleted as if copied already, never
// copied to Failed: lost. After such a change the copy is not looked
// for: the success's mail is copied again (twice in Processed), and
// none is lost.
func TestDovecotCopyCutThenMailboxRecreated(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	a, c := imaptest.Message("1@ok", "order", "a"), imaptest.Message("3@dead", "order", "c")
	require.NoError(t, d.Append("Orders", a, c))
	var armed, cut, held atomic.Bool
	release := make(chan struct{})
	selecting := make(chan struct{})
	p := imaptest.NewProxyWith(t, d.Addr(), imaptest.Hooks{OnLine: func(conn *imaptest.Conn, line string) bool {
		if !armed.Load() {
			return false
		}
		if strings.Contains(line, "UID COPY") && cut.CompareAndSwap(false, true) {
			conn.Mute() // the COPY reaches the server; its answer is lost
			go func() { time.Sleep(200 * time.Millisecond); conn.Close() }()
		} else if cut.Load() && strings.Contains(line, "SELECT") {
			// Every SELECT after the cut (the completion's retry, on a
			// fresh connection, and the scan's) waits for the mailbox
			// to be created again: the retry must see the new one.
			if held.CompareAndSwap(false, true) {
				close(selecting)
			}
			select {
			case <-release:
			case <-conn.Closed():
			}
		}
		return false
	}})
	p.HideCapability("MOVE")
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Host, cfg.Port, cfg.Mailbox = p.Host(), p.Port(), "Orders"
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 2)
	byID := map[string]*task.Task{}
	for _, tk := range em.all() {
		byID[tk.Header(imap.HeaderMessageID)] = tk
	}

	d.Stop() // both completions wait, and are applied in one batch
	ctx := context.Background()
	require.NoError(t, src.Complete(ctx, byID["1@ok"], task.Succeeded, ""))
	require.NoError(t, src.Complete(ctx, byID["3@dead"], task.DeadLettered, "bad order"))
	require.Eventually(t, func() bool { return src.Status().CompletionFailures > 0 }, 20*time.Second, 10*time.Millisecond)
	armed.Store(true)
	d.Resume()
	select {
	case <-selecting:
	case <-time.After(20 * time.Second):
		t.Fatal("no retry after the cut")
	}
	deleteAndCreate(t, d, "Orders", c, a) // the dead letter's mail takes UID 1
	close(release)

	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	require.NoError(t, src.WaitCompletions(wctx))
	ids, err := d.MessageIDs("Failed")
	require.NoError(t, err)
	require.Equal(t, []string{"3@dead"}, ids, "the dead letter's mail")
	ids, err = d.MessageIDs("Processed")
	require.NoError(t, err)
	require.NotEmpty(t, ids)
	require.Zero(t, dovecotCount(t, d, "Orders"))
}
