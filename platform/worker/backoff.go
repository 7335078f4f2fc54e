package worker

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// The pool's two back-offs, the delay before a failed task's next attempt
// (Backoff) and the pause after a failed Lease (leaseRetry), are both
// github.com/cenkalti/backoff/v5's ExponentialBackOff.

// Backoff is the retry delay policy: the delay after the n-th failed
// attempt is Initial × Multiplier^(n-1), capped at Max, then spread by a
// random factor in [1-Jitter, 1+Jitter], never beyond Max: a spread
// above Max is folded back below it, so that delays at the cap still
// differ.
type Backoff struct {
	// Initial is the delay after the first failure. Default 1s.
	Initial time.Duration `koanf:"initial"`
	// Max caps the delay, jitter included: no delay is longer. At most
	// MaxBackoffMax (50 years). Default 5m.
	Max time.Duration `koanf:"max"`
	// Multiplier grows the delay per attempt; at least 1. Default 2.
	Multiplier float64 `koanf:"multiplier"`
	// Jitter is the random spread as a fraction of the delay, in [0, 1].
	// Default 0.2; a negative value means no jitter.
	Jitter float64 `koanf:"jitter"`
}

// MaxBackoffMax bounds Backoff.Max (and so Initial): the delay is spread
// by up to Jitter (at most 1) above the capped one before it is folded
// back below Max, and that spread must still fit a time.Duration; past
// it a delay wrapped round to a negative one and the task was retried at
// once. Fifty years.
const MaxBackoffMax = 50 * 365 * 24 * time.Hour

// WithDefaults returns b with zero fields set to their defaults.
func (b Backoff) WithDefaults() Backoff {
	if b.Initial == 0 {
		b.Initial = DefaultBackoffInitial
	}
	if b.Max == 0 {
		b.Max = DefaultBackoffMax
	}
	if b.Multiplier == 0 {
		b.Multiplier = DefaultBackoffMultiplier
	}
	if b.Jitter == 0 {
		b.Jitter = DefaultBackoffJitter
	}
	return b
}

// Validate reports the invalid fields of b, each prefixed with its key.
func (b Backoff) Validate() error {
	var errs []error
	if b.Initial < 0 {
		errs = append(errs, fmt.Errorf("initial: must not be negative (got %s)", b.Initial))
	}
	if b.Max < 0 {
		errs = append(errs, fmt.Errorf("max: must not be negative (got %s)", b.Max))
	}
	if b.Max > MaxBackoffMax {
		errs = append(errs, fmt.Errorf("max: must be at most %s (got %s)", MaxBackoffMax, b.Max))
	}
	// Against the max in effect: a zero Max is the default one.
	if limit := b.WithDefaults().Max; b.Initial > limit && limit <= MaxBackoffMax {
		errs = append(errs, fmt.Errorf("initial: must not exceed max %s (got %s)", limit, b.Initial))
	}
	if b.Multiplier != 0 && b.Multiplier < 1 {
		errs = append(errs, fmt.Errorf("multiplier: must be at least 1 (got %g)", b.Multiplier))
	}
	if b.Jitter > 1 {
		errs = append(errs, fmt.Errorf("jitter: must be at most 1 (got %g)", b.Jitter))
	}
	return errors.Join(errs...)
}

// exponential returns b as a fresh backoff.ExponentialBackOff.
func (b Backoff) exponential() *backoff.ExponentialBackOff {
	e := &backoff.ExponentialBackOff{
		InitialInterval:     b.Initial,
		RandomizationFactor: max(b.Jitter, 0),
		Multiplier:          b.Multiplier,
		MaxInterval:         b.Max,
	}
	e.Reset()
	return e
}

// steps is how many NextBackOff calls take the interval from Initial to
// Max: past that the delay no longer grows.
func (b Backoff) steps() int {
	if b.Multiplier <= 1 || b.Initial <= 0 || b.Initial >= b.Max {
		return 1
	}
	return int(math.Ceil(math.Log(float64(b.Max)/float64(b.Initial))/math.Log(b.Multiplier))) + 1
}

// Delay returns the delay after failed attempt n (1-based), with jitter,
// at most Max. b must have its defaults applied.
func (b Backoff) Delay(n int) time.Duration {
	e := b.exponential()
	for range min(max(n, 1), b.steps()) - 1 {
		e.NextBackOff()
	}
	d := e.NextBackOff()
	if d > b.Max {
		// The jitter spread the capped delay above Max (by at most Max,
		// as Jitter is at most 1): fold it back below, keeping it spread.
		d = max(b.Max-(d-b.Max), 0)
	}
	return d
}

// leaseRetry is the back-off between failed Lease calls: 50ms doubling up
// to 5s, spread by ±20%; Reset once a Lease succeeds.
func leaseRetry() *backoff.ExponentialBackOff {
	return Backoff{Initial: 50 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2, Jitter: 0.2}.exponential()
}
