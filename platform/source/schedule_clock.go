package source

import (
	"context"
	"sync"
	"time"
)

// clock is the time a Schedule runs on (a fake one in tests).
type clock interface {
	Now() time.Time
	// Sleep waits until the clock reads at least t, or ctx ends (then it
	// returns ctx.Err()).
	Sleep(ctx context.Context, t time.Time) error
}

type realClock struct {
	wall func() time.Time // nil: time.Now (a clock that jumps in tests)
}

func (c realClock) Now() time.Time {
	if c.wall != nil {
		return c.wall()
	}
	return time.Now()
}

// wallCheck is how long, at most, Sleep waits before it reads the wall
// clock again.
const wallCheck = time.Second

// Sleep waits until the wall clock reads t. Timers run on the monotonic
// clock, which a wall clock set forward (an NTP step) does not move and
// which stands still while the machine sleeps: a timer set for the whole
// distance would end late by the jump or the suspend, and the due time
// would count as missed. So Sleep waits at most wallCheck at a time and
// reads the wall clock after each wait; a wall clock set back does not
// end it early either.
func (c realClock) Sleep(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(min(t.Sub(c.Now()), wallCheck))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			d := t.Sub(c.Now())
			if d <= 0 {
				return nil
			}
			timer.Reset(min(d, wallCheck))
		}
	}
}

// MemoryMarks are Marks kept in this process: they survive a source's
// restart by its supervisor, not the host's. The zero value is ready.
type MemoryMarks struct {
	mu   sync.Mutex
	last map[string]time.Time
}

var _ Marks = (*MemoryMarks)(nil)

// LastRun returns schedule's mark.
func (m *MemoryMarks) LastRun(_ context.Context, schedule string) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[schedule], nil
}

// SetLastRun records schedule's mark.
func (m *MemoryMarks) SetLastRun(_ context.Context, schedule string, due time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil {
		m.last = map[string]time.Time{}
	}
	m.last[schedule] = due
	return nil
}
