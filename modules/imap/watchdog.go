package imap

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// watchdog closes a connection whose command makes no progress within a
// timeout (Config.CommandTimeout), so that a server that stops answering
// while its TCP connection stays up ends the session (and the reconnect
// loop takes over) instead of stalling it. The go-imap client bounds a
// response once it has begun, not the wait for it. A body fetch's
// watchdog, kicked by every read that returns data, also has an overall
// deadline (see guardBody), so that a server dripping its answer cannot
// hold the session for ever.
type watchdog struct {
	t     *time.Timer
	d     time.Duration
	fired atomic.Bool

	// The overall deadline of a body fetch (see guardBody): zero end, none.
	end   time.Time
	total time.Duration // from the start to end
	want  int64         // the bytes asked for
	late  atomic.Bool   // fired at end
}

// minBodyRate is the least rate, in bytes per second, at which a body
// fetch must receive the bytes it asks for: a fetch of n bytes may take
// Config.CommandTimeout plus n at this rate, whatever its progress (see
// guardBody). A legitimate server, even across a slow link, sends faster;
// one that drips its answer (a byte every so often, just within the
// command timeout) is cut.
const minBodyRate = 64 << 10

// guard starts a watchdog on c for one command; end it with done.
func (s *Source) guard(c *imapclient.Client) *watchdog {
	return s.startWatchdog(c, &watchdog{d: s.cfg.CommandTimeout})
}

// guardBody starts a watchdog on c for a body fetch of want bytes: no
// progress within CommandTimeout closes the connection, and so does the
// fetch not being done within CommandTimeout plus want at minBodyRate,
// whatever its progress (see bodyDeadline). End it with done.
func (s *Source) guardBody(c *imapclient.Client, want int64) *watchdog {
	total := bodyDeadline(s.cfg.CommandTimeout, want)
	return s.startWatchdog(c, &watchdog{d: s.cfg.CommandTimeout, end: time.Now().Add(total), total: total, want: want})
}

// bodyDeadline is how long a body fetch of want bytes may take:
// timeout (Config.CommandTimeout) plus want at minBodyRate.
func bodyDeadline(timeout time.Duration, want int64) time.Duration {
	secs := float64(max(want, 0)) / minBodyRate
	if secs >= float64(MaxReconnectDelay/time.Second) { // no overflow
		return MaxReconnectDelay
	}
	return timeout + time.Duration(secs*float64(time.Second))
}

// startWatchdog arms w, fully set, on c.
func (s *Source) startWatchdog(c *imapclient.Client, w *watchdog) *watchdog {
	w.t = time.AfterFunc(w.d, func() {
		if !w.end.IsZero() && !time.Now().Before(w.end) {
			w.late.Store(true)
		}
		w.fired.Store(true)
		_ = c.Close()
	})
	return w
}

// kick restarts the countdown: the command made progress. It never
// pushes it past the overall deadline, if any. A nil watchdog does
// nothing.
func (w *watchdog) kick() {
	if w == nil {
		return
	}
	d := w.d
	if !w.end.IsZero() {
		d = min(d, time.Until(w.end))
	}
	w.t.Reset(d)
}

// done stops the watchdog and returns err, saying so when the watchdog
// closed the connection (then never nil: the connection is gone), and
// naming the limit that was passed.
func (w *watchdog) done(err error) error {
	w.t.Stop()
	if !w.fired.Load() {
		return err
	}
	if err == nil {
		err = errors.New("connection closed")
	}
	if w.late.Load() {
		return fmt.Errorf("%w (%w: the body fetch was not done within %s, command_timeout %s plus the %d bytes asked for at %d KiB/s)",
			err, errTooSlow, w.total.Round(time.Millisecond), w.d, w.want, minBodyRate>>10)
	}
	return fmt.Errorf("%w (%w within command_timeout %s)", err, errNoAnswer, w.d)
}

// errNoAnswer marks an error of a command the watchdog cut: the server
// did not answer in time, which a network gone silent does as well as a
// server stuck on the command.
var errNoAnswer = errors.New("no answer")

// errTooSlow marks an error of a body fetch cut by its overall deadline
// (see guardBody): the answer came too slowly, which a slow network does
// as well as a server dripping it.
var errTooSlow = errors.New("answer too slow")

// progressReader kicks a watchdog on every read that returns data (not
// past the watchdog's overall deadline, see guardBody).
type progressReader struct {
	r io.Reader
	w *watchdog
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.kick()
	}
	return n, err
}
