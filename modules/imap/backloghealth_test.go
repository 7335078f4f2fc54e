package imap_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
)

// slowBodies delays every body fetch by delay; from the stuck-th one on
// (0: never) the server goes silent instead, its connection up.
func slowBodies(t *testing.T, srv *memserver.Server, delay time.Duration, stuck int32) *imaptest.Proxy {
	t.Helper()
	var n atomic.Int32
	return imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		if !strings.Contains(strings.ToUpper(line), "BODY.PEEK[]") {
			return false
		}
		if stuck > 0 && n.Add(1) >= stuck {
			c.Mute()
			return false
		}
		select {
		case <-time.After(delay):
		case <-c.Closed():
		}
		return false
	}})
}

func backlogConfig(p *imaptest.Proxy) imap.Config {
	cfg := testConfig(p.Host(), p.Port())
	cfg.PollInterval = time.Second // StaleAfter 3s
	cfg.Reconcile = time.Minute
	cfg.BatchSize = 1
	cfg.CommandTimeout = time.Minute // a silent server is not cut before StaleAfter
	return cfg
}

// A first scan of a backlog that lasts longer than StaleAfter, its
// fetches and emits going on, keeps the source ready. Before, the check
// judged the end of the last scan only, and failed all along such a scan
// ("last successful search ... ago") although it was making progress.
func TestCheckPassesWhileABacklogIsWorkedThrough(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	const n = 6
	appendN(t, srv, 1, n)
	p := slowBodies(t, srv, 1500*time.Millisecond, 0)
	src := newSource(t, backlogConfig(p))
	require.Equal(t, 3*time.Second, src.StaleAfter())
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 1)
	began := time.Now()
	var failures []string
	for em.count() < n {
		require.Less(t, time.Since(began), 60*time.Second, "the backlog is not emitted")
		if err := src.Check(context.Background()); err != nil {
			failures = append(failures, err.Error())
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(began)
	t.Logf("backlog emitted in %s (StaleAfter %s)", took, src.StaleAfter())
	require.Greater(t, took, src.StaleAfter(), "the scan did not outlast StaleAfter: the test proves nothing")
	if len(failures) > 0 {
		t.Fatalf("the check failed %d times while the backlog was worked through, first: %s", len(failures), failures[0])
	}
	require.NoError(t, src.Check(context.Background()))
}

// A scan stuck on a fetch the server never answers (its connection up,
// the command timeout far) fails the check once StaleAfter has passed
// with nothing fetched nor emitted, though its search succeeded.
func TestCheckFailsWhenAScanIsStuck(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3)
	p := slowBodies(t, srv, 0, 3)
	src := newSource(t, backlogConfig(p))
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 2)
	var why string
	require.Eventually(t, func() bool {
		err := src.Check(context.Background())
		if err != nil {
			why = err.Error()
		}
		return err != nil
	}, src.StaleAfter()+10*time.Second, 20*time.Millisecond, "a stuck scan passes the check")
	require.ErrorIs(t, src.Check(context.Background()), imap.ErrNotReady)
	require.Contains(t, why, "no progress", why)
	t.Logf("stuck: %s", why)
	require.Equal(t, 2, em.count())
}
