package worker

import "github.com/plba/plba/platform/queue"

// FailApply makes the runtime's control methods fail to apply an
// override when f returns an error (before the pool changes): a pool
// whose apply fails.
func FailApply(r *Runtime, f func(queue string, o queue.PoolOverride) error) { r.ov.applyFault = f }
