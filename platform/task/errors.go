package task

import (
	"errors"
	"fmt"
	"time"
)

// PermanentError marks a failure that retrying cannot fix. The task goes
// straight to the dead letter with Err's text as the reason. A
// PermanentError without an Err (or a nil *PermanentError) is still
// permanent; its text, and reason, is "permanent failure (no reason
// given)".
type PermanentError struct{ Err error }

const noReason = "permanent failure (no reason given)"

// Error says the failure is permanent and why.
func (e *PermanentError) Error() string {
	if e == nil || e.Err == nil {
		return noReason
	}
	return "permanent: " + e.Err.Error()
}

// Unwrap returns the wrapped error (nil when there is none).
func (e *PermanentError) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.Err
}

// Permanent wraps err so the runtime does not retry it. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error {
	return &PermanentError{Err: fmt.Errorf(format, args...)}
}

// IsPermanent reports whether err (or an error it wraps) is permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// RetryAfterError asks for a retry after Delay, overriding the pool's
// back-off. It still counts as an attempt.
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

// Error says when the task is retried and why.
func (e *RetryAfterError) Error() string {
	if e == nil {
		return "retry requested"
	}
	return fmt.Sprintf("retry after %s: %v", e.Delay, e.Err)
}

// Unwrap returns the wrapped error (nil when there is none).
func (e *RetryAfterError) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.Err
}

// RetryAfter wraps err so the task is retried after d. A nil err is
// replaced by a generic one: asking for a retry is itself a failure.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		err = errors.New("retry requested")
	}
	return &RetryAfterError{Delay: d, Err: err}
}

// RetryDelay returns the delay requested by a RetryAfterError in err's
// chain (a nil *RetryAfterError requests none).
func RetryDelay(err error) (time.Duration, bool) {
	var r *RetryAfterError
	if errors.As(err, &r) && r != nil {
		return r.Delay, true
	}
	return 0, false
}

// ErrGoexit is the failure recorded for code the runtime calls that ended
// its goroutine with runtime.Goexit (testing's FailNow, say) instead of
// returning: a handler, middleware or observer (its worker dies and is
// replaced; the attempt fails) or a source's Complete (a failed
// completion). Goexit cannot be recovered; the runtime notices that the
// call neither returned nor panicked.
var ErrGoexit = errors.New("runtime.Goexit called")

// PanicError is the failure recorded when a handler panics.
type PanicError struct {
	Value any
	Stack []byte
}

// Error names the recovered panic value.
func (e *PanicError) Error() string {
	if e == nil {
		return "handler panic"
	}
	return fmt.Sprintf("handler panic: %v", e.Value)
}
