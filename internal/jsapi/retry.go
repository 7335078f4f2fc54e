// Package jsapi holds what the platform's JetStream parts share when they
// set up streams, consumers and key-value buckets on a cluster.
package jsapi

import (
	"github.com/plba/plba/internal/sleep"

	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// FirstAttempt bounds the first attempt of one set-up request; each
// attempt that runs out of time doubles the next one's bound, up to
// MaxAttempt. Several hosts that set up the same replicated stream at
// once (a cluster starting) can leave a request unanswered: a lookup of a
// stream another host is creating at that moment gets no reply (seen with
// nats-server 2.15, three hosts starting together). Without a bound such
// a call waits for the whole start timeout.
const (
	FirstAttempt = 2 * time.Second
	MaxAttempt   = 8 * time.Second
)

// Retry runs op, each attempt bounded (FirstAttempt, doubling up to
// MaxAttempt), again after an error a cluster forming or a concurrent
// creation explains (no answer in time, no responders yet, the name just
// taken by another host's create, no peers placed yet), with a back-off
// from 100 ms up to 1 s, until ctx ends; then it returns the last error.
// op must be idempotent (create-or-update, lookups).
func Retry[T any](ctx context.Context, op func(context.Context) (T, error)) (T, error) {
	delay, bound := 100*time.Millisecond, FirstAttempt
	for {
		actx, cancel := context.WithTimeout(ctx, bound)
		v, err := op(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !Retryable(err) {
			return v, err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			bound = min(2*bound, MaxAttempt)
		}
		if !sleep.For(ctx.Done(), delay) {
			return v, err
		}
		delay = min(2*delay, time.Second)
	}
}

// Retryable reports whether err from a set-up request is worth another
// attempt.
func Retryable(err error) bool {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "no suitable peers")
}
