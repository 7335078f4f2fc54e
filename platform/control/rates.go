package control

import (
	"sync"
	"time"
)

// counts are a queue's cumulative counters at one moment.
type counts struct{ enqueued, succeeded, failed int64 }

type sample struct {
	at time.Time
	c  map[string]counts
}

// rates keeps samples of the counters over a window, to answer rates per
// second over that window.
type rates struct {
	window, every time.Duration
	mu            sync.Mutex
	samples       []sample // oldest first, within window
	done          chan struct{}
	wg            sync.WaitGroup
}

func newRates(window, every time.Duration) *rates {
	return &rates{window: window, every: every}
}

// start samples with fn now and every r.every until stop.
func (r *rates) start(fn func() map[string]counts) {
	r.add(time.Now(), fn())
	r.done = make(chan struct{})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(r.every)
		defer t.Stop()
		for {
			select {
			case <-r.done:
				return
			case now := <-t.C:
				r.add(now, fn())
			}
		}
	}()
}

func (r *rates) stop() {
	if r.done != nil {
		close(r.done)
		r.wg.Wait()
		r.done = nil
	}
}

func (r *rates) add(now time.Time, c map[string]counts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, sample{at: now, c: c})
	cut := 0
	for cut < len(r.samples)-1 && now.Sub(r.samples[cut].at) > r.window {
		cut++
	}
	r.samples = append(r.samples[:0], r.samples[cut:]...)
}

// Rates are tasks per second over the last minute (or since the host
// started, when that is shorter).
type Rates struct {
	EnqueuedPerSec  float64 `json:"enqueued_per_sec"`
	SucceededPerSec float64 `json:"succeeded_per_sec"`
	FailedPerSec    float64 `json:"failed_per_sec"`
	// Window is the span the rates are computed over.
	Window string `json:"window"`
}

// rate returns queue's rates from the oldest sample to now (cur).
func (r *rates) rate(queue string, now time.Time, cur counts) Rates {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.samples {
		span := now.Sub(s.at)
		if span > r.window || span <= 0 {
			continue
		}
		old := s.c[queue]
		sec := span.Seconds()
		return Rates{
			EnqueuedPerSec:  float64(cur.enqueued-old.enqueued) / sec,
			SucceededPerSec: float64(cur.succeeded-old.succeeded) / sec,
			FailedPerSec:    float64(cur.failed-old.failed) / sec,
			Window:          span.Round(time.Second).String(),
		}
	}
	return Rates{Window: "0s"}
}
