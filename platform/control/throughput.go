package control

import (
	"net/http"
	"sync"
	"time"

	"github.com/plba/plba/platform/admin"
)

// ThroughputWindow is how far back GET /admin/v1/throughput reaches.
const ThroughputWindow = 15 * time.Minute

// Throughput answers GET /admin/v1/throughput: this process's tasks per
// second over the last ThroughputWindow, every queue together, one point
// per sampling interval, oldest first.
type Throughput struct {
	// Every is the sampling interval: each point is the rate over the
	// interval that ends at its time.
	Every  string            `json:"every"`
	Points []ThroughputPoint `json:"points"`
}

// ThroughputPoint is the rates over one sampling interval.
type ThroughputPoint struct {
	At              time.Time `json:"at"`
	EnqueuedPerSec  float64   `json:"enqueued_per_sec"`
	SucceededPerSec float64   `json:"succeeded_per_sec"`
	FailedPerSec    float64   `json:"failed_per_sec"`
}

// history is a ring of the host's total counters, one sample per
// sampling interval, over ThroughputWindow.
type history struct {
	every time.Duration
	mu    sync.Mutex
	ring  []totalSample // circular once full
	next  int
	full  bool
}

type totalSample struct {
	at time.Time
	c  counts
}

func newHistory(window, every time.Duration) *history {
	return &history{every: every, ring: make([]totalSample, int(window/every)+1)}
}

// add records the sum of c over every queue at now.
func (h *history) add(now time.Time, c map[string]counts) {
	var tot counts
	for _, q := range c {
		tot.enqueued += q.enqueued
		tot.succeeded += q.succeeded
		tot.failed += q.failed
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ring[h.next] = totalSample{at: now, c: tot}
	h.next = (h.next + 1) % len(h.ring)
	if h.next == 0 {
		h.full = true
	}
}

// points returns the rates between consecutive samples, oldest first.
func (h *history) points() []ThroughputPoint {
	h.mu.Lock()
	var s []totalSample
	if h.full {
		s = append(append(s, h.ring[h.next:]...), h.ring[:h.next]...)
	} else {
		s = append(s, h.ring[:h.next]...)
	}
	h.mu.Unlock()
	out := make([]ThroughputPoint, 0, max(0, len(s)-1))
	for i := 1; i < len(s); i++ {
		sec := s[i].at.Sub(s[i-1].at).Seconds()
		if sec <= 0 {
			continue
		}
		a, b := s[i-1].c, s[i].c
		out = append(out, ThroughputPoint{At: s[i].at,
			EnqueuedPerSec:  nonNegative(float64(b.enqueued-a.enqueued) / sec),
			SucceededPerSec: nonNegative(float64(b.succeeded-a.succeeded) / sec),
			FailedPerSec:    nonNegative(float64(b.failed-a.failed) / sec),
		})
	}
	return out
}

// nonNegative clamps a rate that a counter going away (a pool removed)
// made negative.
func nonNegative(f float64) float64 { return max(f, 0) }

func (a *API) throughput(w http.ResponseWriter, _ *http.Request) error {
	admin.WriteJSON(w, http.StatusOK, Throughput{Every: a.history.every.String(), Points: a.history.points()})
	return nil
}
