package worker

import (
	"errors"
	"fmt"

	"github.com/plba/plba/platform/task"
)

// What a handler returns is never trusted to print: these helpers keep a
// panicking Error method from escaping settlement.

// permanentReason is the dead-letter reason of the permanent error err:
// the text of the error it wraps.
func permanentReason(err error) string {
	var pe *task.PermanentError
	if errors.As(err, &pe) && pe != nil && pe.Err != nil {
		reason, _ := errorText(pe.Err)
		return reason
	}
	return (&task.PermanentError{}).Error()
}

// errorText returns err.Error() and true, or, when Error panics (a nil
// pointer of an error type returned as a non-nil error, a PermanentError
// made without its Err), a description of that panic and false.
func errorText(err error) (msg string, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			msg, ok = fmt.Sprintf("<error %T panicked in Error(): %v>", err, r), false
		}
	}()
	return err.Error(), true
}

// printable returns err, or an unprintableError in its place when its
// Error method panics.
func printable(err error) error {
	if err == nil {
		return nil
	}
	if msg, ok := errorText(err); !ok {
		return &unprintableError{msg: msg, err: err}
	}
	return err
}

// unprintableError stands in for an error whose Error method panics, so
// that what the pool reports (to the observer, in logs) can be printed.
// It unwraps to the original.
type unprintableError struct {
	msg string
	err error
}

func (e *unprintableError) Error() string { return e.msg }
func (e *unprintableError) Unwrap() error { return e.err }
