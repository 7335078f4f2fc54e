package source

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// PollFunc is one poll: it looks for new work and emits it. An error ends
// the source's Run, so the supervisor restarts it with back-off.
type PollFunc func(ctx context.Context, emit Emitter) error

// Poller is a Source that calls a PollFunc at once and then every Interval
// (give or take Jitter) until its context ends. Build it with Poll.
type Poller struct {
	name     string
	interval time.Duration
	jitter   time.Duration
	fn       PollFunc
}

var _ Source = (*Poller)(nil)

// Poll returns a Source named name that calls fn immediately and then
// waits interval plus a uniformly random offset in [-jitter, +jitter]
// (never less than zero) between the end of one call and the start of the
// next. Run returns nil when its context ends, and fn's error (wrapped)
// when fn fails while the context is still alive. An interval <= 0 is
// treated as one second; a negative jitter as zero; jitter is capped at
// interval.
func Poll(name string, interval, jitter time.Duration, fn PollFunc) *Poller {
	if interval <= 0 {
		interval = time.Second
	}
	if jitter < 0 {
		jitter = 0
	}
	if jitter > interval {
		jitter = interval
	}
	return &Poller{name: name, interval: interval, jitter: jitter, fn: fn}
}

// Name returns the poller's name.
func (p *Poller) Name() string { return p.name }

// Run polls until ctx ends.
func (p *Poller) Run(ctx context.Context, emit Emitter) error {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if err := p.poll(ctx, emit); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("source %q: poll: %w", p.name, err)
		}
		if t == nil {
			t = time.NewTimer(p.next())
		} else {
			t.Reset(p.next())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// poll runs one poll under the supervisor's observer (a span whose
// children are the tasks emitted, see StartPoll).
func (p *Poller) poll(ctx context.Context, emit Emitter) error {
	pctx, end := StartPoll(ctx, p.name)
	err := p.fn(pctx, emit)
	end(err)
	return err
}

// next returns the wait before the next poll.
func (p *Poller) next() time.Duration {
	if p.jitter == 0 {
		return p.interval
	}
	d := p.interval - p.jitter + rand.N(2*p.jitter+1)
	if d < 0 {
		d = 0
	}
	return d
}

// WithCompleter returns a Source that polls like p and also implements
// Completer through c, so the tasks it emits carry the completion header
// and their final outcome is reported to c.
func (p *Poller) WithCompleter(c Completer) Source {
	return completingPoller{Poller: p, Completer: c}
}

type completingPoller struct {
	*Poller
	Completer
}
