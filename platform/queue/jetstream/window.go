package jetstream

import (
	"context"

	"github.com/plba/plba/platform/queue"
)

// The publish window. nats.go bounds the asynchronous publishes awaiting
// their ack (Config.MaxAsyncPending), but a publish that finds the bound
// reached waits only a fixed 200 ms for room and then fails with "stalled
// with too many outstanding async published messages": a batch larger
// than the bound, enqueued while the server is slow to ack, lost tasks to
// that error. The backend therefore keeps the count itself: every
// asynchronous publish (Enqueue's tasks, the ack path's finished-key
// records) first takes a token from b.window, waiting as long as its
// context allows, and gives it back when nats.go is done with the message
// (the ack or error callback, which nats.go calls exactly once for every
// publish it accepted) or refused it (PublishMsgAsync returned an error).
// So nats.go never holds more than MaxAsyncPending and never stalls.

// acquire takes a token of the publish window, waiting until one is free,
// ctx ends (its error) or the backend closes (queue.ErrClosed).
func (b *Backend) acquire(ctx context.Context) error {
	select {
	case b.window <- struct{}{}:
		return nil
	default:
	}
	select {
	case b.window <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.closing:
		return queue.ErrClosed
	}
}

// releaseWindow gives a token back. It never blocks (it may run on
// nats.go's callback with its publisher lock held).
func (b *Backend) releaseWindow() {
	select {
	case <-b.window:
	default:
	}
}
