package imap

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"go.uber.org/zap"
)

// completer is the completion queue and the loop that applies it, on a
// connection of its own, separate from the watching session's. Complete
// only queues; the loop takes everything due and applies it together, and
// retries what failed with back-off, without limit.
type completer struct {
	// Owned by the loop goroutine (and by close once it has ended).
	c        *imapclient.Client
	conn     *meter // c's connection (see meter)
	validity uint32
	folders  map[string]bool
	suspects completionSuspects // see completion_poison.go
	// limit is the most requests the loop takes in a batch: halved when
	// a batch is cut by its deadline (timeout, after the dial timeout),
	// doubled again, up to maxCompletionBatch, when one is applied.
	limit   int
	timeout time.Duration

	wake chan struct{} // cap 1: work was queued
	stop chan struct{} // closed by close: the loop drains and ends
	done chan struct{} // closed when the loop has ended

	mu      sync.Mutex
	pending []*compReq
	busy    int           // requests the loop took and has not settled
	changed chan struct{} // closed and replaced when pending or busy shrink
	started bool
	closed  bool
}

func (cp *completer) init() {
	cp.folders = map[string]bool{}
	cp.limit, cp.timeout = maxCompletionBatch, completionTimeout
	cp.suspects.init()
	cp.wake = make(chan struct{}, 1)
	cp.stop = make(chan struct{})
	cp.done = make(chan struct{})
	cp.changed = make(chan struct{})
}

// enqueue adds r (starting the loop on first use).
func (cp *completer) enqueue(ctx context.Context, s *Source, r *compReq) error {
	waitUntil := time.Now().Add(queueWait)
	marked := false
	for {
		cp.mu.Lock()
		if cp.closed {
			cp.mu.Unlock()
			if marked {
				s.released([]*compReq{r})
			}
			return ErrClosed
		}
		if !marked {
			// Marked under cp.mu once Close is ruled out, before the
			// loop can finish it (and before a wait for room, which the
			// reaper must not take for a task that never completes): a
			// completion refused (ErrClosed) leaves its message as it
			// was, in flight, emitted again after InFlightTimeout, and
			// so does one Close leaves unapplied (see drainCompletions).
			s.markCompleting(r.t.Key)
			marked = true
		}
		if !cp.started {
			cp.started = true
			go s.completionLoop() // owned by the source: Close stops it
		}
		if len(cp.pending) < maxQueuedCompletions || time.Now().After(waitUntil) || ctx.Err() != nil {
			s.countQueued()
			cp.pending = append(cp.pending, r)
			cp.mu.Unlock()
			cp.poke()
			return nil
		}
		ch := cp.changed
		cp.mu.Unlock()
		t := time.NewTimer(time.Until(waitUntil))
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
		case <-cp.stop:
		}
		t.Stop()
	}
}

func (cp *completer) poke() {
	select {
	case cp.wake <- struct{}{}:
	default:
	}
}

// take removes and returns up to limit requests due at now,
// and the earliest time a request left waits for (zero: none). It takes
// at most one request per task key, the first due: a later one (a success
// told after the dead letter, which takes the mail out of the failed
// folder) must see what the earlier one did, which it does not in the
// same batch (every request's message is looked for before any is
// moved). Applied one batch apart, in either order, a task's completions
// leave its mail where its success puts it (a dead letter finds no mail
// to move once the success moved it), so one that waits out a refusal
// (notBefore) does not hold up the others.
func (cp *completer) take(now time.Time, limit int) (batch []*compReq, nextDue time.Time) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	keep := cp.pending[:0]
	taken := map[string]bool{} // keys in batch: their later requests wait
	for _, r := range cp.pending {
		switch {
		case taken[r.t.Key]:
			nextDue = now // due once the one before it is settled
			keep = append(keep, r)
		case len(batch) < limit && !r.notBefore.After(now):
			batch = append(batch, r)
			taken[r.t.Key] = true
		default:
			if !r.notBefore.After(now) {
				nextDue = now
			} else if nextDue.IsZero() || r.notBefore.Before(nextDue) {
				nextDue = r.notBefore
			}
			keep = append(keep, r)
		}
	}
	clear(cp.pending[len(keep):])
	cp.pending = keep
	cp.busy += len(batch)
	return batch, nextDue
}

// settle records that the loop is done with n requests and puts back
// those in again (still to apply).
func (cp *completer) settle(n int, again []*compReq) {
	cp.mu.Lock()
	cp.busy -= n
	cp.pending = append(again, cp.pending...)
	close(cp.changed)
	cp.changed = make(chan struct{})
	cp.mu.Unlock()
}

// wait returns once nothing is queued or being applied.
func (cp *completer) wait(ctx context.Context) error {
	for {
		cp.mu.Lock()
		n, ch := len(cp.pending)+cp.busy, cp.changed
		cp.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("imap: wait for %d completions: %w", n, ctx.Err())
		}
	}
}

// completionLoop applies the queue until Close, then makes one bounded
// attempt at what is left.
func (s *Source) completionLoop() {
	cp := &s.comp
	defer close(cp.done)
	bo := newBackoff(s.cfg.Reconnect)
	var retryAt time.Time // after a failed batch: the loop's back-off
	for {
		select {
		case <-cp.stop:
			s.drainCompletions()
			return
		default:
		}
		now := time.Now()
		var batch []*compReq
		var nextDue time.Time
		if !now.Before(retryAt) {
			batch, nextDue = cp.take(now, cp.limit)
		}
		if len(batch) == 0 {
			wakeAt := nextDue
			if now.Before(retryAt) {
				wakeAt = retryAt
			}
			var timer *time.Timer
			var fire <-chan time.Time
			if !wakeAt.IsZero() {
				timer = time.NewTimer(time.Until(wakeAt))
				fire = timer.C
			}
			select {
			case <-cp.stop:
				s.drainCompletions()
				return
			case <-cp.wake:
			case <-fire:
			}
			if timer != nil {
				timer.Stop()
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout+cp.timeout)
		go func() { // owned by this batch: ends with ctx
			select {
			case <-cp.stop: // Close waits for this batch: give it drainTimeout
			case <-ctx.Done():
				return
			}
			t := time.NewTimer(drainTimeout)
			defer t.Stop()
			select {
			case <-t.C:
				cancel()
			case <-ctx.Done():
			}
		}()
		again, connErr := s.processBatch(ctx, batch)
		cut := errors.Is(ctx.Err(), context.DeadlineExceeded)
		cancel()
		cp.settle(len(batch), again)
		switch {
		case cut && len(batch) > 1:
			// Retried whole, a batch that needs longer than it may take
			// (mail looked for by content one by one on a slow server)
			// would be cut again every time, none of it ever applied.
			cp.limit = max(1, len(batch)/2)
			s.log.Warn("a completion batch took longer than it may: applying smaller ones",
				zap.Int("batch", len(batch)), zap.Int("next_at_most", cp.limit), zap.Duration("timeout", s.cfg.DialTimeout+cp.timeout))
		case connErr == nil:
			cp.limit = min(maxCompletionBatch, 2*cp.limit)
		}
		if connErr != nil {
			retryAt = time.Now().Add(next(bo))
		} else {
			bo.Reset()
			retryAt = time.Time{}
		}
	}
}

// drainCompletions makes one attempt, bounded by drainTimeout, at the
// completions still queued when Close is called.
// A task's later completions wait for its first (see take): they are
// taken by the next rounds.
func (s *Source) drainCompletions() {
	cp := &s.comp
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	var left []*compReq
	for ctx.Err() == nil {
		batch, _ := cp.take(time.Now().Add(24*time.Hour), cp.limit) // due or not
		if len(batch) == 0 {
			break
		}
		again, err := s.processBatch(ctx, batch)
		cp.settle(len(batch), nil)
		left = append(left, again...)
		if err != nil {
			break
		}
	}
	cp.mu.Lock()
	left = append(left, cp.pending...)
	cp.pending = nil
	cp.mu.Unlock()
	if len(left) > 0 {
		s.released(left)
		s.log.Warn("completions left unapplied at close: their messages stay in the mailbox and are emitted again (after InFlightTimeout, or a restart)",
			zap.Int("messages", len(left)))
	}
}

// processBatch applies batch and returns the requests to apply again, and
// the error when the batch failed as a whole (the connection, not a
// message: the loop backs off). A server's NO for a batch of several is
// narrowed down by applying each request on its own; one refused alone
// waits its own back-off (notBefore) without holding up the others.
func (s *Source) processBatch(ctx context.Context, batch []*compReq) (again []*compReq, err error) {
	cp := &s.comp
	err = s.applyBatch(ctx, batch)
	if err != nil && !isServerNo(err) && ctx.Err() == nil {
		cp.reset() // a stale connection: one more try on a fresh one
		err = s.applyBatch(ctx, batch)
	}
	switch {
	case err == nil:
		cp.suspects.batchApplied()
		s.mu.Lock()
		s.st.CompletionBatches++
		s.mu.Unlock()
		for _, r := range batch {
			r.round++
			if s.finish(r) {
				again = append(again, r)
			}
		}
		if len(batch) > 1 {
			s.log.Debug("completions applied", zap.Int("batch", len(batch)))
		}
		return again, nil
	case isServerNo(err) && len(batch) > 1:
		for i, r := range batch {
			a, e := s.processBatch(ctx, []*compReq{r})
			again = append(again, a...)
			if e != nil { // the connection failed: the rest waits for the loop's back-off
				return append(again, batch[i+1:]...), e
			}
		}
		return again, nil
	}
	cp.reset()
	s.completionFailed(batch, err)
	if isServerNo(err) {
		r := batch[0]
		r.failures++
		b := newBackoff(s.cfg.Reconnect)
		var d time.Duration
		for range r.failures {
			d = next(b)
		}
		r.notBefore = time.Now().Add(d)
		return batch, nil
	}
	return batch, err
}

// completionFailed counts and logs (once for the batch) a batch that
// failed; it is retried.
func (s *Source) completionFailed(batch []*compReq, err error) {
	s.mu.Lock()
	s.st.CompletionFailures += uint64(len(batch))
	s.st.LastCompletionError = err.Error()
	s.mu.Unlock()
	s.log.Warn("completion failed: retrying with back-off; the tasks stay done",
		zap.Int("messages", len(batch)), zap.Error(err))
}

func (cp *completer) reset() {
	if cp.c != nil {
		_ = cp.c.Close()
	}
	cp.c, cp.conn = nil, nil
	cp.validity = 0
	cp.folders = map[string]bool{}
}

// close stops the loop (which drains what it can, bounded), closes the
// connection and refuses further completions.
func (cp *completer) close() {
	cp.mu.Lock()
	if cp.closed {
		cp.mu.Unlock()
		return
	}
	cp.closed = true
	started := cp.started
	cp.mu.Unlock()
	close(cp.stop)
	if started {
		<-cp.done
	}
	cp.reset()
	cp.mu.Lock()
	cp.pending = nil
	cp.busy = 0
	close(cp.changed)
	cp.changed = make(chan struct{})
	cp.mu.Unlock()
}

// errFromFatal unwraps dial's fatal marker: for the completion loop every
// failure is retried.
func errFromFatal(err error) error {
	var f fatal
	if errors.As(err, &f) {
		return f.err
	}
	return err
}
