package imap_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
)

// A mail held (its body refused while Dovecot returned the mail beside
// it), then alone above the cursor, that mail processed and left in the
// INBOX \Seen, beside a mail read long ago (\Seen, never scanned), the
// first the control asks for (the highest UID), that the server fails
// on whenever it is asked for: refused (a proxy answers NO, as Exchange does for a mail it
// cannot convert), or dropped (Dovecot's imap process dies on it, its
// maildir file shorter than the size its name records). The control
// fetch asked for that old mail every session: every session failed on
// it, and the held mail waited for new mail for ever, although the
// other mail, returned fine, would have told. A mail that failed as the
// control is now not chosen again while another can serve: the control
// returns the other mail, the held mail's refusals count, and it is
// given up, dead-lettered into Failed.
func TestDovecotControlIsNotAskedAgainOfAMailThatFailedIt(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"refused", "dropped"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			controlMailFails(t, how == "dropped", 0)
		})
	}
}

// The old mail of the test above, the connection ended on it as the
// control, is a suspect: it is not the control again while it is one.
// Left in the INBOX \Seen, it is never scanned again, which would clear
// that; the reconcile pass forgets it instead: its search leaves \Seen
// mail out in seen-only mode, and a suspect it does not find is
// forgotten (forgetGone). So no mail stays out of the controls for good
// after an outage, each of whose sessions spends one on a failed control.
func TestDovecotControlSuspectUntilReconcile(t *testing.T) {
	t.Parallel()
	src := controlMailFails(t, true, 500*time.Millisecond)
	require.Eventually(t, func() bool { return imap.Suspects(src) == 0 }, 20*time.Second, 20*time.Millisecond)
}

// controlMailFails runs the test above (reconcile: Config.Reconcile, 0
// for the default) and returns its source.
func controlMailFails(t *testing.T, dropped bool, reconcile time.Duration) *imap.Source {
	d := dovecottest.Start(t)
	// UID 1: the one the server refuses; UID 2 fine; UID 3: the old mail.
	require.NoError(t, d.Save("INBOX", imaptest.Message("1@held", "order", strings.Repeat("held ", 40))))
	require.NoError(t, d.Save("INBOX", imaptest.Message("2@fine", "order", strings.Repeat("fine ", 40))))
	require.NoError(t, d.Save("INBOX", imaptest.Message("3@old", "read long ago", "x")))
	c, err := d.Dial()
	require.NoError(t, err)
	_, err = c.Select("INBOX", nil).Wait()
	require.NoError(t, err)
	require.NoError(t, c.Store(goimap.UIDSetNum(3), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Flags: []goimap.Flag{goimap.FlagSeen}}, nil).Close())
	require.NoError(t, c.Logout().Wait())
	if dropped {
		truncateMail(t, d, "INBOX", "<3@old>")
	}

	var oldAsked atomic.Int32 // bodies of the old mail asked for
	p := imaptest.NewProxyWith(t, d.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") {
			return false
		}
		set := strings.Fields(rest)[0]
		if uidSetHas(set, 3) {
			oldAsked.Add(1)
			if dropped {
				return false // Dovecot dies on it
			}
		} else if !uidSetHas(set, 1) {
			return false
		}
		c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
		return true
	}})
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Host, cfg.Port = p.Host(), p.Port()
	cfg.OnSuccess.MoveTo = imap.Ptr("")
	if reconcile > 0 {
		cfg.Reconcile = reconcile
	}
	src := newSource(t, cfg)
	em := &workerEmitter{src: src}
	start(t, src, em)

	require.Eventually(t, func() bool { return dovecotCount(t, d, "Failed") == 1 }, 30*time.Second, 50*time.Millisecond,
		"the held mail given up, another mail serving as the control (the old mail asked for %d times)", oldAsked.Load())
	ids, err := d.MessageIDs("Failed")
	require.NoError(t, err)
	require.Equal(t, []string{"1@held"}, ids)
	require.EqualValues(t, 1, src.Status().Refused)
	require.EqualValues(t, 1, oldAsked.Load(), "the old mail asked for once as the control, not again")
	// Dovecot dies on the old mail's envelope too: the maildir tells.
	require.Len(t, maildirFiles(t, d, "INBOX"), 2, "the old mail and the one processed left in place")
	return src
}

// As above, the old mail a file an external agent wrote into the
// maildir (no size in its name) that Dovecot cannot read: it dies on
// that mail's RFC822.SIZE. The body control asked for the sizes of up
// to 16 other mails first, to fetch the smallest: that fetch ended the
// connection every session, counted against no mail, and the held mail
// waited for new mail for ever, though the other mail would have told.
// The control now asks for the start of one mail's body, a failure
// counted against that mail: the next control asks for the other, and
// the held mail is given up.
func TestDovecotControlRotatesPastAMailWhoseSizeTheServerFailsOn(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	// UID 1: the one the server refuses; UID 2 fine; the old mail next.
	require.NoError(t, d.Save("INBOX", imaptest.Message("1@held", "order", "held")))
	require.NoError(t, d.Save("INBOX", imaptest.Message("2@fine", "order", "fine")))
	old := filepath.Join(maildirOf(d, "INBOX"), "cur", "1700000000.M1P1.agent:2,S") // \Seen
	require.NoError(t, os.WriteFile(old, imaptest.Message("3@old", "read long ago", "x"), 0))

	p := imaptest.NewProxyWith(t, d.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") || !uidSetHas(strings.Fields(rest)[0], 1) {
			return false
		}
		c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
		return true
	}})
	cfg := dovecotConfig(d, imap.ModePoll)
	cfg.Host, cfg.Port = p.Host(), p.Port()
	cfg.OnSuccess.MoveTo = imap.Ptr("")
	src := newSource(t, cfg)
	em := &workerEmitter{src: src}
	start(t, src, em)

	require.Eventually(t, func() bool { return dovecotCount(t, d, "Failed") == 1 }, 30*time.Second, 50*time.Millisecond,
		"the held mail given up, the other mail serving as the control")
	ids, err := d.MessageIDs("Failed")
	require.NoError(t, err)
	require.Equal(t, []string{"1@held"}, ids)
	require.EqualValues(t, 1, src.Status().Refused)
}
