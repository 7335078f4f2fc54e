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
)

// idleEnder answers the first n IDLE commands of any client (every one
// when n < 0) in the server's stead: it accepts the IDLE and ends it on
// its own with a tagged OK after wait, before the client sent DONE, as
// servers with an IDLE timeout of their own do. Later IDLEs reach the
// server. Each end it sends is counted and reported on ended (when there
// is room). A DONE the client sends after such an end fails the test: it
// would reach a server that is no longer idling.
// The check ends with the test's body (call over): the source's stop may
// race an end it has not read yet.
func idleEnder(t *testing.T, srv *memserver.Server, n int32, wait time.Duration, ended chan<- time.Time) (p *imaptest.Proxy, count *atomic.Int64, over func()) {
	t.Helper()
	var left atomic.Int32
	left.Store(n)
	count = new(atomic.Int64)
	var endedOn sync.Map // *imaptest.Conn → true once its IDLE was ended
	var quiet atomic.Bool
	p = imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		if strings.EqualFold(strings.TrimSpace(line), "DONE") {
			if _, ok := endedOn.Load(c); ok && !quiet.Load() {
				t.Errorf("the client sent DONE after the server ended its IDLE")
				return true
			}
			return false
		}
		tag, name, _ := command(line)
		if name != "IDLE" || (n >= 0 && left.Add(-1) < 0) {
			return false
		}
		endedOn.Store(c, true)
		if wait == 0 {
			c.Reply("+ idling\r\n" + tag + " OK IDLE terminated (timeout)\r\n")
		} else {
			c.Reply("+ idling\r\n")
			select {
			case <-time.After(wait): // the server's IDLE timeout
			case <-c.Closed():
				return true
			}
			c.Reply(tag + " OK IDLE terminated (timeout)\r\n")
		}
		count.Add(1)
		select {
		case ended <- time.Now():
		default:
		}
		return true
	}})
	return p, count, func() { quiet.Store(true) }
}

// idleConfig is a source of p in IDLE mode whose own IDLE renewal and
// watchdog search come far too late for any test: only noticing that
// the server ended the IDLE gets new mail fetched.
func idleConfig(p *imaptest.Proxy) imap.Config {
	cfg := testConfig(p.Host(), p.Port())
	cfg.Mode, cfg.PollInterval = imap.ModeIdle, time.Hour
	cfg.Reconcile, cfg.IdleRenew = time.Hour, 28*time.Minute
	return cfg
}

// TestIdleTheServerEndedIsRestartedAtOnce: when the server ends an IDLE
// on its own (a tagged OK before the client's DONE), the source notices,
// starts over at once and fetches the mail that arrived meanwhile. It
// used to go on waiting for pushes the server no longer sent, until its
// watchdog search or IDLE renewal (min(Reconcile, IdleRenew), a minute
// by default; here 28 minutes).
func TestIdleTheServerEndedIsRestartedAtOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		wait time.Duration
	}{{"with the continuation", 0}, {"later", 100 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := imaptest.NewServer(t, memserver.Options{})
			ended := make(chan time.Time, 1)
			p, _, over := idleEnder(t, srv, 1, tc.wait, ended)
			src := newSource(t, idleConfig(p))
			em := &fakeEmitter{}
			start(t, src, em)
			select {
			case <-ended:
			case <-time.After(10 * time.Second):
				t.Fatal("the source never idled")
			}
			appendN(t, srv, 1, 1)
			waitEmitted(t, em, 1)
			require.Len(t, em.keys(), 1)
			// Then it idles on the server again: pushed mail is fetched.
			appendN(t, srv, 2, 1)
			waitEmitted(t, em, 2)
			require.Len(t, em.keys(), 2)
			over()
		})
	}
}

// TestIdleTheServerEndsAtOnceEveryTimeBacksOff: a server that ends every
// IDLE as soon as it began does not make the source spin: it starts over
// with the source's reconnect back-off (here from 50 ms, doubling, up to
// 500 ms, each delay at least half its step), and mail still flows.
func TestIdleTheServerEndsAtOnceEveryTimeBacksOff(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	ended := make(chan time.Time, 16)
	p, count, over := idleEnder(t, srv, -1, 0, ended)
	cfg := idleConfig(p)
	cfg.Reconnect = imap.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	var first time.Time
	select {
	case first = <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the source never idled")
	}
	appendN(t, srv, 1, 1)
	waitEmitted(t, em, 1)
	var sixth time.Time
	for i := 2; i <= 6; i++ {
		select {
		case sixth = <-ended:
		case <-time.After(10 * time.Second):
			t.Fatalf("the source idled only %d times", count.Load())
		}
	}
	// The five delays in between are at least 25+50+100+200+250 ms.
	require.GreaterOrEqual(t, sixth.Sub(first), 600*time.Millisecond, "%d IDLEs", count.Load())
	require.Len(t, em.keys(), 1)
	over()
}
