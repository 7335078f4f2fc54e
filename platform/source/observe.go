package source

import (
	"context"
	"time"

	"go.uber.org/zap"

	plog "github.com/plba/plba/platform/log"
)

// Observer sees a source's polls and emits. Telemetry implements it (a span
// per poll whose children are the tasks it emits, poll log fields, emit and
// error counters); the supervisor uses a no-op one when there is none.
type Observer interface {
	// StartPoll begins one poll of source; tasks emitted under the
	// returned context belong to it. end(err) finishes it.
	StartPoll(ctx context.Context, source string) (context.Context, func(err error))
	// Emitted counts n tasks emitted by source that the backend stored
	// (an Emit's duplicates, which the backend dropped, are not counted:
	// see Stats.Emitted).
	Emitted(ctx context.Context, source string, n int)
}

type nopObserver struct{}

func (nopObserver) StartPoll(ctx context.Context, _ string) (context.Context, func(error)) {
	return ctx, func(error) {}
}
func (nopObserver) Emitted(context.Context, string, int) {}

type observerKey struct{}

// StartPoll begins one poll of the source whose Run received ctx: sources
// that poll in their own way (not through Poll) call it around each poll,
// emit with the returned context, and call end with the poll's error. It
// does nothing when the supervisor has no observer.
func StartPoll(ctx context.Context, source string) (context.Context, func(err error)) {
	return observerOf(ctx).StartPoll(ctx, source)
}

func observerOf(ctx context.Context) Observer {
	if o, ok := ctx.Value(observerKey{}).(Observer); ok {
		return o
	}
	return nopObserver{}
}

// runContext is the context a source's Run gets: the supervisor's observer
// for StartPoll, and the log field "source" for log.FromContext.
func runContext(ctx context.Context, o Observer, name string) context.Context {
	ctx = plog.With(ctx, zap.String("source", name))
	if o == nil {
		return ctx
	}
	return context.WithValue(ctx, observerKey{}, o)
}

// healthObserver passes a source's polls and emits on to the supervisor's
// observer and tells the source's run that it works when a poll ends
// without error.
type healthObserver struct {
	next Observer
	run  *run
}

func (h *healthObserver) StartPoll(ctx context.Context, source string) (context.Context, func(error)) {
	ctx, end := h.next.StartPoll(ctx, source)
	return ctx, func(err error) {
		end(err)
		h.run.lastPoll.Store(time.Now().UnixNano())
		if err == nil {
			h.run.working()
		}
	}
}

// Emitted passes the count on; the emitter tells the run of the batches
// it handed over through run.pushed, duplicates included.
func (h *healthObserver) Emitted(ctx context.Context, source string, n int) {
	h.next.Emitted(ctx, source, n)
}
