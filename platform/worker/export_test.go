package worker

import (
	"time"
	"unsafe"

	"github.com/plba/plba/platform/queue"
)

// FailApply makes the runtime's control methods fail to apply an
// override when f returns an error (before the pool changes): a pool
// whose apply fails.
func FailApply(r *Runtime, f func(queue string, o queue.PoolOverride) error) { r.ov.applyFault = f }

// StepWallClock makes p, not started yet, see the wall clock stepped
// forward by d (whole seconds) since its epoch, as after an NTP step or a
// suspend (which stops the monotonic clock, not the wall clock): its
// epoch's wall reading moves back by d, its monotonic reading stays.
func StepWallClock(p *Pool, d time.Duration) {
	type timeLayout struct { // time.Time's fields
		wall uint64 // with a monotonic reading: flag, 33 bits of seconds since 1885, 30 bits of nanoseconds
		ext  int64  // the monotonic reading
		loc  *time.Location
	}
	before := p.epoch
	tl := (*timeLayout)(unsafe.Pointer(&p.epoch))
	if tl.wall&(1<<63) == 0 || d%time.Second != 0 {
		panic("StepWallClock: an epoch with a monotonic reading, whole seconds")
	}
	tl.wall -= uint64(d/time.Second) << 30
	if p.epoch.Sub(before) != 0 || before.Round(0).Sub(p.epoch.Round(0)) != d {
		panic("StepWallClock: time.Time's layout changed")
	}
}

// SetStopGrace makes p, not started yet, wait d instead of stopGrace
// (see stopGrace): tests whose handlers must return within it, or whose
// give-backs must end within the graces after it, get margins a loaded
// machine keeps.
func SetStopGrace(p *Pool, d time.Duration) { p.grace = d }
