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

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Sleep waits on the monotonic clock and checks the wall clock after, so
// a wall clock set back does not fire a due time early.
func (realClock) Sleep(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			d := time.Until(t)
			if d <= 0 {
				return nil
			}
			timer.Reset(d)
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
