package imap

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// watchdog closes a connection whose command makes no progress within a
// timeout (Config.CommandTimeout), so that a server that stops answering
// while its TCP connection stays up ends the session (and the reconnect
// loop takes over) instead of stalling it. The go-imap client bounds a
// response once it has begun, not the wait for it.
type watchdog struct {
	t     *time.Timer
	d     time.Duration
	fired atomic.Bool
}

// guard starts a watchdog on c for one command; end it with done.
func (s *Source) guard(c *imapclient.Client) *watchdog {
	w := &watchdog{d: s.cfg.CommandTimeout}
	w.t = time.AfterFunc(w.d, func() {
		w.fired.Store(true)
		_ = c.Close()
	})
	return w
}

// kick restarts the countdown: the command made progress. A nil watchdog
// does nothing.
func (w *watchdog) kick() {
	if w != nil {
		w.t.Reset(w.d)
	}
}

// done stops the watchdog and returns err, saying so when the watchdog
// closed the connection (then never nil: the connection is gone).
func (w *watchdog) done(err error) error {
	w.t.Stop()
	if !w.fired.Load() {
		return err
	}
	if err == nil {
		err = errors.New("connection closed")
	}
	return fmt.Errorf("%w (%w within command_timeout %s)", err, errNoAnswer, w.d)
}

// errNoAnswer marks an error of a command the watchdog cut: the server
// did not answer in time, which a network gone silent does as well as a
// server stuck on the command.
var errNoAnswer = errors.New("no answer")
