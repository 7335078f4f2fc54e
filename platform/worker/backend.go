package worker

import (
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/task"
)

// Calls into the queue backend (Lease, Extend, Ack, Retry, DeadLetter,
// Release, Stats, Probe) go through backendCall: a panic in one, a broken
// backend, is recovered there and becomes that call's error, so that the
// caller's error path handles it like a refusal. A settlement that
// panicked is a failed settlement (Stats.SettleFailed, task.Returned, the
// source not told: the backend may not have done it), a give-back that
// panicked a failed release, an extension that panicked one that failed,
// a lease that panicked a failed lease (retried after a back-off); and
// what the pool holds for the call (the worker, its slot, the
// reservation, Stop's count of the work in progress) is given back as
// after any error. Left to the caller, the panic would kill a worker
// outside its delivery (the reservation lost for good, the delivery
// neither run nor given back) or a goroutine without a recover (the
// fetcher, the housekeeper, a give-back: the process).

// What a backend call returns is no more trusted than what a handler
// returns: backendIs examines it with a panic in its Is or Unwrap method
// (an error type's nil pointer wrapped in it) recovered, as errorText
// does for its Error method.

// Backend calls other than the settlements (OpAck...), as logged.
const (
	opLease  = "lease"
	opExtend = "extend"
	opStats  = "stats"
	opProbe  = "probe"
)

// backendCall runs call, the backend's op about t (nil: no task), and
// returns its error, or, when it panics, an error saying so (see
// backendPanicked).
func (p *Pool) backendCall(op string, t *task.Task, call func() error) (err error) {
	returned := false
	defer func() {
		if r := recover(); r != nil {
			err = p.backendPanicked(op, t, r)
		} else if !returned {
			p.backendGoexit(op, t)
		}
	}()
	err = call()
	returned = true
	return err
}

// backendGoexit logs and counts the backend's op about t (nil: no task)
// that ended its goroutine with runtime.Goexit, which nothing can
// recover: the goroutine goes on ending. A settlement's (OpAck...) is a
// failed settlement, counted here: the worker dies with it, and the pool
// replaces it and tells the observer (see crashed); what the backend did
// is unknown, and the delivery, left leased, comes back when its lease
// ends.
func (p *Pool) backendGoexit(op string, t *task.Task) {
	err := fmt.Errorf("backend %s ended its goroutine (runtime.Goexit)", op)
	switch op {
	case OpAck, OpRetry, OpDeadLetter, OpRelease:
		p.n.settleFailed(op).Add(1)
	}
	p.setLastError(err)
	if t != nil {
		p.log.Error("queue backend called runtime.Goexit", zap.String("op", op), zap.String("task", t.ID),
			zap.String("kind", t.Kind), zap.Int("attempt", t.Attempt), zap.Stack("stack"))
		return
	}
	p.log.Error("queue backend called runtime.Goexit", zap.String("op", op), zap.Stack("stack"))
}

// backendPanicked logs the panic r of the backend's op about t (nil: no
// task) with its stack, records it as the pool's last error, and returns
// the error that stands for the call's outcome (its callers add the task
// and what it was for, as to any error of the call).
func (p *Pool) backendPanicked(op string, t *task.Task, r any) error {
	err := fmt.Errorf("backend %s panicked: %v", op, r)
	if t != nil {
		p.log.Error("queue backend panicked", zap.String("op", op), zap.String("task", t.ID), zap.String("kind", t.Kind),
			zap.Int("attempt", t.Attempt), zap.Any("panic", r), zap.Stack("stack"))
	} else {
		p.log.Error("queue backend panicked", zap.String("op", op), zap.Any("panic", r), zap.Stack("stack"))
	}
	p.setLastError(err)
	return err
}

// backendIs reports errors.Is(err, target) for err, the error of a
// backend call; false when examining err panics (an Is or Unwrap method
// of an error in its chain, a nil pointer of an error type, say): the
// call failed, and the caller handles err as a refusal it cannot tell
// apart. Left to the caller, the panic would end a goroutine the pool's
// code does not expect to end there (a worker giving deliveries back
// unrun, the fetcher, Stop's give-backs: the process) or the caller of
// Pause.
func backendIs(err, target error) (is bool) {
	defer func() {
		if recover() != nil {
			is = false
		}
	}()
	return errors.Is(err, target)
}
