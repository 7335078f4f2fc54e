// Package sleep waits a while unless told to stop: the one helper for the
// back-offs and pauses of the runtime's loops.
package sleep

import (
	"context"
	"time"
)

// For waits d or until done closes (a nil done never does), and reports
// whether d passed.
func For(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// Ctx waits d or until ctx ends, and returns nil when d passed, ctx's
// error otherwise.
func Ctx(ctx context.Context, d time.Duration) error {
	if !For(ctx.Done(), d) {
		return ctx.Err()
	}
	return nil
}
