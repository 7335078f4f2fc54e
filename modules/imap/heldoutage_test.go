package imap_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/task"
)

// A mail refused once while the server returned the others of its batch
// (held), then a body outage of the whole server, longer than
// RefusalSpan, answered with a bare NO, while that mail is the only one
// above the cursor (the others completed: moved away, or left in the
// mailbox \Seen): no refusal counts against it, as the server returns no
// other mail in those sessions (the control fetch of another message is
// refused too, or there is none), and once the server recovers the mail
// is emitted whole. Each poll of the outage counted against it: good
// mail was dead-lettered, moved to Failed unprocessed.
func TestHeldMailIsNotGivenUpForABodyOutage(t *testing.T) {
	t.Parallel()
	for name, moveTo := range map[string]string{"moved": imap.DefaultProcessed, "left": ""} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			heldThroughOutage(t, moveTo)
		})
	}
}

func heldThroughOutage(t *testing.T, moveTo string) {
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3) // UID 1 is refused once, with 2 and 3 returned
	const (
		partial = iota // UID 1 refused, the others returned
		outage         // every body refused
		healed
	)
	var state atomic.Int32
	var ctl control
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if ctl.saw(name, rest) || name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") {
			return false
		}
		set := strings.Fields(rest)[0]
		switch state.Load() {
		case partial:
			if set == "3" { // the last asked for alone: the outage starts after it
				state.Store(outage)
			}
			if !uidSetHas(set, 1) {
				return false
			}
		case outage:
		default:
			return false
		}
		c.Reply(tag + " NO Internal error occurred.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.OnSuccess.MoveTo = imap.Ptr(moveTo)
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	waitEmitted(t, em, 2)
	require.EqualValues(t, outage, state.Load())
	for _, tk := range em.all() {
		require.NotEqual(t, "1@example.com", tk.Header(imap.HeaderMessageID))
		complete(t, src, tk, task.Succeeded)
	}
	// Only UID 1 above the cursor now: sessions over the span, enough to
	// give it up were the refusals counted.
	began, reconnects := time.Now(), src.Status().Reconnects
	require.Eventually(t, func() bool {
		return em.count() > 2 || src.Status().Reconnects > reconnects+2*imap.RefusedSessionsBeforeSetAside &&
			time.Since(began) > 3*cfg.RefusalSpan
	}, 15*time.Second, 5*time.Millisecond)
	require.Equal(t, 2, em.count(), "a good mail given up for a server failing every body")
	if moveTo == "" {
		require.NotZero(t, ctl.bodies.Load(), "the mail left in the mailbox asked for as the control")
	}

	state.Store(healed)
	waitEmitted(t, em, 3)
	m := em.all()[2]
	require.Equal(t, "1@example.com", m.Header(imap.HeaderMessageID))
	require.NotNil(t, m.Payload)
	require.Empty(t, m.Header(task.HeaderRejected))
	require.Zero(t, src.Status().Refused)
	for _, msg := range messages(t, srv, "INBOX") {
		if msg.MessageID != "1@example.com" {
			require.Equal(t, []string{"\\Seen"}, flagNames(msg), "the control changes no flag")
		}
	}
}

// A mail the server refuses each time while it returns the others, then
// alone above the cursor, the others completed and left in the mailbox
// (\Seen): the server returns one of those when asked for it in the same
// session (the control fetch), so the refusals still count, and the mail
// is given up once due, its stand-in dead-lettered.
func TestHeldMailAloneIsGivenUpWhenTheServerReturnsOtherMail(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3) // UID 1 is the one the server refuses
	var ctl control
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		if ctl.saw(name, rest) || name != "UID FETCH" || !strings.Contains(rest, "BODY.PEEK[]") {
			return false
		}
		if !uidSetHas(strings.Fields(rest)[0], 1) {
			return false
		}
		c.Reply(tag + " NO The requested message could not be converted to an RFC-822 compatible format.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.OnSuccess.MoveTo = imap.Ptr("")
	cfg.RefusalSpan = time.Second // not given up while 2 and 3 are still asked for
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	waitEmitted(t, em, 2)
	for _, tk := range em.all()[:2] {
		complete(t, src, tk, task.Succeeded)
	}
	waitEmitted(t, em, 3)
	standIn := em.all()[2]
	require.Equal(t, "1@example.com", standIn.Header(imap.HeaderMessageID))
	require.Nil(t, standIn.Payload)
	require.Contains(t, standIn.Header(task.HeaderRejected), "while it returned other mail")
	require.NotZero(t, ctl.bodies.Load(), "the control asked for a body")
	require.Equal(t, "3", ctl.last.Load(), "the highest UID, none having failed a control")
	require.EqualValues(t, 1, src.Status().Refused)
}

// control tells the source's control fetches apart (see imap's
// control.go): the first KiB of one mail's body (BODY.PEEK[]<0.1024>).
type control struct {
	bodies atomic.Int32
	last   atomic.Value // the UID set of the last control body fetch
}

// saw records a command line's name and rest; it reports nothing
// handled (the proxy goes on with the line).
func (c *control) saw(name, rest string) bool {
	if name == "UID FETCH" && strings.Contains(rest, "BODY.PEEK[]<0.1024>") {
		c.bodies.Add(1)
		c.last.Store(strings.Fields(rest)[0])
	}
	return false
}

func flagNames(m memserver.Message) []string {
	var out []string
	for _, f := range m.Flags {
		out = append(out, string(f))
	}
	return out
}

// As above, the server refusing the mail's metadata (its ENVELOPE) rather
// than its body: the control is one search and one fetch, of the first
// KiB of another mail's body (metadata may come from the server's index
// while its store fails). It asked for the sizes of up to 16 mails
// first, to ask for the smallest: a command more in every session the
// held mail is refused alone.
func TestMetadataControlIsOneFetch(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3) // UID 1 is the one whose metadata the server refuses
	var alone atomic.Bool // UID 1 is all there is to scan
	var mu sync.Mutex
	after := map[*imaptest.Conn][]string{} // the commands since UID 1's metadata was refused alone
	var controls [][]string                // those of each scan, until the next
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		tag, name, rest := command(line)
		mu.Lock()
		defer mu.Unlock()
		if cmds, ok := after[c]; ok {
			if name == "NOOP" || name == "SELECT" { // the next scan
				controls = append(controls, cmds)
				delete(after, c)
			} else {
				after[c] = append(cmds, name+" "+rest)
			}
		}
		if name != "UID FETCH" || !strings.Contains(rest, "ENVELOPE") || !uidSetHas(strings.Fields(rest)[0], 1) {
			return false
		}
		if alone.Load() && strings.Fields(rest)[0] == "1" {
			after[c] = []string{}
		}
		c.Reply(tag + " NO Internal error occurred.\r\n")
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.OnSuccess.MoveTo = imap.Ptr("")
	cfg.RefusalSpan = time.Second // not given up while 2 and 3 are still asked for
	src, _ := observedSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)

	waitEmitted(t, em, 2)
	for _, tk := range em.all()[:2] {
		complete(t, src, tk, task.Succeeded)
	}
	alone.Store(true)
	waitEmitted(t, em, 3)
	standIn := em.all()[2]
	require.Equal(t, "1", standIn.Header(imap.HeaderUID))
	require.Contains(t, standIn.Header(task.HeaderRejected), "metadata fetch, refused in")

	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, controls, "scans with the mail refused alone")
	for _, cmds := range controls {
		require.Len(t, cmds, 2, "the control: a search and a fetch, %q", cmds)
		require.True(t, strings.HasPrefix(cmds[0], "UID SEARCH"), "%q", cmds)
		require.True(t, strings.HasPrefix(cmds[1], "UID FETCH") && strings.Contains(cmds[1], "BODY.PEEK[]<0.1024>"),
			"the first KiB of another mail's body: %q", cmds)
		require.False(t, uidSetHas(strings.Fields(strings.TrimPrefix(cmds[1], "UID FETCH "))[0], 1), "%q", cmds)
	}
}
