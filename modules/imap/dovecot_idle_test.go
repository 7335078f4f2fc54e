package imap_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/modules/imap/imaptest"
)

// waitDovecotIdle waits until d shows a session of the source in IDLE.
func waitDovecotIdle(t *testing.T, d *dovecottest.Server) {
	t.Helper()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ss, err := d.Sessions(ctx)
		if err != nil {
			return false
		}
		for _, s := range ss {
			if s.Idle() {
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond, "no session in IDLE")
}

// Against a real Dovecot, the keep-alives Dovecot sends in an IDLE
// ("* OK Still here", every imap_idle_notify_interval) do not end it,
// while a BYE does (doveadm kick, as at a shutdown): the source starts
// over at once and fetches the mail that arrived meanwhile, long before
// its own IDLE renewal or watchdog search (an hour here).
func TestDovecotIdleOutlastsKeepalivesAndStartsOverAfterABye(t *testing.T) {
	t.Parallel()
	d := dovecottest.Start(t, "imap_idle_notify_interval = 1 secs")
	cfg := dovecotConfig(d, imap.ModeIdle)
	cfg.Reconcile, cfg.IdleRenew, cfg.PollInterval = time.Hour, 28*time.Minute, time.Hour
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	waitDovecotIdle(t, d)

	time.Sleep(2500 * time.Millisecond) // two keep-alives or more
	require.Zero(t, src.Status().Reconnects, "a keep-alive ended the session")
	require.NoError(t, d.Save("INBOX", imaptest.Message("1@idle", "order", "x")))
	waitEmitted(t, em, 1)
	require.Zero(t, src.Status().Reconnects)

	waitDovecotIdle(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, d.Kick(ctx, dovecottest.Username))
	require.NoError(t, d.Save("INBOX", imaptest.Message("2@idle", "order", "x")))
	waitEmitted(t, em, 2)
	require.Equal(t, uint64(1), src.Status().Reconnects)
	require.Len(t, em.keys(), 2)
}
