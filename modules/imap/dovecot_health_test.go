package imap_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/platform/health"
)

// dovecotHealth runs src's readiness check (HealthCheck, as the module
// registers it) in a health registry, every 50ms.
func dovecotHealth(t *testing.T, src *imap.Source) *health.Registry {
	t.Helper()
	hc := imap.HealthCheck(src)
	hc.Interval = 50 * time.Millisecond
	hr, err := health.NewRegistry(health.Options{}, nil, []health.Check{hc})
	require.NoError(t, err)
	hr.Start()
	t.Cleanup(hr.Stop)
	return hr
}

// waitCheck waits until a run of the check that ended from now on is
// healthy (want) and returns its last error.
func waitCheck(t *testing.T, hr *health.Registry, want bool, limit time.Duration, what string) string {
	t.Helper()
	from := time.Now()
	var res health.Result
	require.Eventually(t, func() bool {
		res = hr.Results()[0]
		return res.CheckedAt.After(from) && res.Healthy == want
	}, limit, 10*time.Millisecond, "%s: healthy is not %v: %+v", what, want, res)
	return res.LastError
}

// The mailbox's readiness against a real Dovecot: a server that stops is
// reported not ready with the reason, a server that freezes (the
// connection stays open, nothing comes back) once the scan has made no
// progress for StaleAfter, and each time the source is ready again once the
// server is back.
func TestDovecotHealthFollowsTheServer(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	p := netfault.NewProxy(t, d.Addr())
	cfg := dovecotConfig(d, imap.ModePoll)
	host, port, err := net.SplitHostPort(p.Addr())
	require.NoError(t, err)
	cfg.Host = host
	cfg.Port, err = strconv.Atoi(port)
	require.NoError(t, err)
	cfg.CommandTimeout = 30 * time.Second // a frozen poll is not cut before StaleAfter
	src := newSource(t, cfg)
	start(t, src, &fakeEmitter{})
	hr := dovecotHealth(t, src)
	waitCheck(t, hr, true, 10*time.Second, "connected")

	d.Stop()
	why := waitCheck(t, hr, false, 5*time.Second, "server stopped")
	require.Contains(t, why, "not connected", why)
	t.Logf("stopped: %s", why)
	d.Resume()
	waitCheck(t, hr, true, 10*time.Second, "server back")

	p.Freeze()
	why = waitCheck(t, hr, false, src.StaleAfter()+2*time.Second, "server frozen")
	require.Contains(t, why, "no progress", why)
	t.Logf("frozen: %s", why)
	p.Thaw()
	waitCheck(t, hr, true, 10*time.Second, "server thawed")
}

// Credentials the server refuses: the check fails and says so, not
// "healthy" while nothing is fetched.
func TestDovecotHealthOnARefusedLogin(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t)
	cfg := dovecotConfig(d, imap.ModeIdle)
	cfg.Password = "not-the-password"
	src := newSource(t, cfg)
	hr := dovecotHealth(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.ErrorIs(t, src.Run(ctx, &fakeEmitter{}), imap.ErrAuth)
	why := waitCheck(t, hr, false, 5*time.Second, "login refused")
	require.Contains(t, why, "authentication failed", why)
	require.NotContains(t, why, cfg.Password, "the password is not in the reason")
	t.Logf("refused: %s", why)
}
