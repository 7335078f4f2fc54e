package source

import (
	"context"
	"fmt"
	"time"
)

// MinAttemptTimeout is the shortest timeout a schedule derives for an
// attempt at a due time's emit (see Schedule.Run): well above the answer
// time of a healthy server, even a slow one, so that an attempt is cut
// only when its answer is not coming (the server leading the work stream
// stopped with the publish in flight), not for every emit.
const MinAttemptTimeout = 2 * time.Second

// WithAttemptTimeout bounds each attempt at a due time's emit by d
// instead of the derived timeout (see Schedule.Run). An attempt cut at
// its timeout is retried within the grace, with the due time's key: a
// timeout under the backend's usual answer time makes every due time
// take a retry (the copy is dropped by its key, the task stored once).
func WithAttemptTimeout(d time.Duration) ScheduleOption {
	return func(s *Schedule) {
		if d > 0 {
			s.attempt = d
		}
	}
}

// attemptTimeout is the timeout of each attempt at due's emit: the one
// WithAttemptTimeout set, else the time from due to the due time after
// it (waiting longer for an answer makes that one late too), at least
// MinAttemptTimeout and at most a quarter of the grace (several attempts
// fit in the grace; an infrequent schedule is not held longer than that
// by an answer that is not coming).
func (s *Schedule) attemptTimeout(due time.Time) time.Duration {
	if s.attempt > 0 {
		return s.attempt
	}
	d := s.grace / 4
	if next := s.times.Next(due); !next.IsZero() {
		d = min(d, next.Sub(due))
	}
	return max(d, MinAttemptTimeout)
}

// attemptKey is the context key of an emit attempt's timeout.
type attemptKey struct{}

// withAttemptTimeout returns ctx carrying an emit attempt's timeout d,
// which the emitter applies to its Enqueue once it lets the emit through
// (attemptContext): a paused source's wait in Emit is not cut.
func withAttemptTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, attemptKey{}, d)
}

// attemptContext returns ctx bounded by the attempt timeout it carries
// (withAttemptTimeout), and done, which releases it and annotates the
// attempt's error err when the timeout cut the attempt (not when ctx
// itself ended). Without a timeout it returns ctx and a done that
// returns err unchanged.
func attemptContext(ctx context.Context) (context.Context, func(err error) error) {
	d, ok := ctx.Value(attemptKey{}).(time.Duration)
	if !ok || d <= 0 {
		return ctx, func(err error) error { return err }
	}
	actx, cancel := context.WithTimeout(ctx, d)
	return actx, func(err error) error {
		cut := actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err != nil && cut {
			return fmt.Errorf("%w (cut at the attempt timeout of %v)", err, d)
		}
		return err
	}
}
