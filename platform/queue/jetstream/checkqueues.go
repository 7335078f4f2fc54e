package jetstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// checkParallel bounds the stream information requests one check has in
// flight.
const checkParallel = 8

// ErrQueueUnavailable is returned by Check when the work stream of a
// queue this process has set up is missing, has no leader or does not
// answer: Enqueue and Lease on that queue fail meanwhile.
var ErrQueueUnavailable = errors.New("jetstream: queue unavailable")

// checkQueues asks the server for the information of the work stream of
// every queue set up in this process (one request per queue, at most
// checkParallel at a time, bounded by ctx). A stream that does not exist
// (deleted, or a store lost) asks keepStores for a round, which sets it
// up again, and fails this check; so does a stream without a leader (a
// clustered stream that lost its quorum) or one whose information does
// not come. The error names each such queue, in the order of their names.
func (b *Backend) checkQueues(ctx context.Context) error {
	var qs []*queueState
	for _, q := range b.knownQueues() {
		if q.setUp.Load() {
			qs = append(qs, q)
		}
	}
	slices.SortFunc(qs, func(a, b *queueState) int { return cmp.Compare(a.queue, b.queue) })
	errs := make([]error, len(qs))
	next := make(chan int, len(qs))
	for i := range qs {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(len(qs), checkParallel) {
		wg.Go(func() {
			for i := range next {
				errs[i] = b.checkQueue(ctx, qs[i])
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// checkQueue checks the work stream of q (see checkQueues).
func (b *Backend) checkQueue(ctx context.Context, q *queueState) error {
	s, err := b.js.Stream(ctx, q.stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		b.askRestore()
		return fmt.Errorf("%w: queue %q: work stream %q not found on the server (being set up again)",
			ErrQueueUnavailable, q.queue, q.stream)
	case err != nil:
		return fmt.Errorf("%w: queue %q: work stream %q: %w", ErrQueueUnavailable, q.queue, q.stream, err)
	}
	if c := s.CachedInfo().Cluster; c != nil && c.Leader == "" {
		return fmt.Errorf("%w: queue %q: work stream %q has no leader", ErrQueueUnavailable, q.queue, q.stream)
	}
	return nil
}
