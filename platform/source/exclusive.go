package source

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/plba/plba/platform/lease"
	"github.com/plba/plba/platform/task"
)

// ExclusiveReleaseTimeout bounds the release of a lease when an exclusive
// source stops.
const ExclusiveReleaseTimeout = 5 * time.Second

// Exclusive returns a Source that runs src on one host of the cluster at a
// time: its Run waits for the lease l, runs src while it holds it, and
// cancels src's context as soon as the hold is lost (l closes Lost a
// margin before the lease could pass to another host; src must return
// promptly on cancel). A lost hold is not a failure: Run waits for the
// lease again. When src returns (or panics, or calls runtime.Goexit), or
// Run's context ends, the lease is released, so another host, or the
// restarted Run, takes over at once. src's error ends Run
// (the supervisor restarts it, and it contends for the lease again).
//
// The result has src's name, forwards Completer when src implements it
// (completions find a source by name on whichever host handles the task)
// and Pauser's Pause and Resume (nothing when src is no Pauser), and is
// a Detailer: the lease's Status (holder, since when, hand-overs) beside
// src's own details.
func Exclusive(src Source, l lease.Lease) Source {
	x := &exclusive{src: src, l: l}
	if c, ok := src.(Completer); ok {
		return exclusiveCompleter{exclusive: x, c: c}
	}
	return x
}

type exclusive struct {
	src Source
	l   lease.Lease

	mu     sync.Mutex
	losses int64
}

var (
	_ Detailer = (*exclusive)(nil)
	_ Pauser   = (*exclusive)(nil)
)

func (x *exclusive) Name() string { return x.src.Name() }

// Pause tells the source to stop fetching when it is a Pauser (see
// Supervisor.Pause); it does nothing otherwise.
func (x *exclusive) Pause() {
	if p, ok := x.src.(Pauser); ok {
		p.Pause()
	}
}

// Resume undoes Pause.
func (x *exclusive) Resume() {
	if p, ok := x.src.(Pauser); ok {
		p.Resume()
	}
}

// ExclusiveDetails is an exclusive source's status.
type ExclusiveDetails struct {
	// Lease is the lease as this host sees it: who holds it, since when.
	Lease lease.Status `json:"lease"`
	// Losses counts the holds this host lost without releasing them.
	Losses int64 `json:"losses"`
	// Source is the wrapped source's own details, when it has any.
	Source any `json:"source,omitempty"`
}

// Details returns the lease's status and the source's details.
func (x *exclusive) Details() any {
	d := ExclusiveDetails{Lease: x.l.Status()}
	x.mu.Lock()
	d.Losses = x.losses
	x.mu.Unlock()
	if dt, ok := x.src.(Detailer); ok {
		d.Source = dt.Details()
	}
	return d
}

// Run holds the lease and runs the source, again after each lost hold.
func (x *exclusive) Run(ctx context.Context, emit Emitter) error {
	sb, _ := x.src.(Standbyer)
	standby := func(on bool) {
		if sb != nil {
			sb.SetStandby(on)
		}
	}
	defer standby(false)
	for {
		standby(true)
		h, err := x.l.Acquire(ctx)
		standby(false)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("source %q: lease: %w", x.src.Name(), err)
		}
		lost, err := x.runReleasing(ctx, h, emit)
		switch {
		case ctx.Err() != nil:
			return nil
		case lost:
			x.mu.Lock()
			x.losses++
			x.mu.Unlock()
			continue
		}
		return err
	}
}

// runReleasing runs the source under h (see runHeld) and releases h when
// it returns, and also when it panics or ends its goroutine with
// runtime.Goexit (the supervisor restarts it): a hold left unreleased
// would keep the lease renewed (a KV lease) or taken (a local one) for
// as long as the process lives, and the restarted Run, like every other
// host's, would wait for it for ever.
func (x *exclusive) runReleasing(ctx context.Context, h lease.Hold, emit Emitter) (lost bool, err error) {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ExclusiveReleaseTimeout)
		_ = h.Release(rctx) // a failed release expires after the lease's TTL
		cancel()
	}()
	return x.runHeld(ctx, h, emit)
}

// runHeld runs the source until it returns, cancelling it when the hold
// is lost; lost reports whether that happened.
func (x *exclusive) runHeld(ctx context.Context, h lease.Hold, emit Emitter) (lost bool, err error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watched := make(chan bool, 1)
	go func() {
		select {
		case <-h.Lost():
			cancel()
			watched <- true
		case <-rctx.Done():
			watched <- false
		}
	}()
	err = x.src.Run(rctx, emit)
	cancel()
	lost = <-watched
	if lost {
		return true, nil
	}
	return false, err
}

type exclusiveCompleter struct {
	*exclusive
	c Completer
}

func (e exclusiveCompleter) Complete(ctx context.Context, t *task.Task, o task.Outcome, reason string) error {
	return e.c.Complete(ctx, t, o, reason)
}
