package imap

import (
	"time"

	"github.com/cenkalti/backoff/v5"
)

// newBackoff is the one reconnect back-off of the source, used by the
// session loop (Run) and by the completion loop: from b.Initial, doubling
// up to b.Max, each delay drawn within ±50% of its step (and never above
// b.Max). Reset it after a success.
func newBackoff(b Backoff) *backoff.ExponentialBackOff {
	e := backoff.NewExponentialBackOff()
	e.InitialInterval = b.Initial
	e.MaxInterval = b.Max
	e.Multiplier = 2
	e.RandomizationFactor = 0.5
	e.Reset()
	return e
}

// next returns the next delay of e, capped at max.
func next(e *backoff.ExponentialBackOff) time.Duration {
	return min(e.NextBackOff(), e.MaxInterval)
}
