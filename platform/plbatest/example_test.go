package plbatest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/plba/plba/platform/plbatest"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

type reminderArgs struct {
	To string `json:"to"`
}

var remind = task.Define[reminderArgs]("reminder.send")

// A module's test: start it on the platform, enqueue, run until idle, and
// look at what happened. The handler fails once; the retry's back-off (an
// hour here) takes no real time.
func Example() {
	t := &exampleT{} // in a real test: the *testing.T
	defer t.cleanup()

	failed := false
	module := worker.SupplyRoute(remind.Handle(func(ctx context.Context, a reminderArgs) error {
		if !failed {
			failed = true
			return errors.New("mail server busy")
		}
		return nil
	}))
	k := plbatest.Start(t, module, plbatest.Set("workers.default.backoff.initial=1h", "workers.default.backoff.max=1h", "workers.default.backoff.jitter=-1"))

	tk, _ := remind.New(reminderArgs{To: "ada@example.test"})
	k.Enqueue(tk)
	k.RunUntilIdle()

	for _, d := range k.Deliveries(remind.Name()) {
		fmt.Println("attempt", d.Task.Attempt, d.Outcome, d.RetryIn.Round(time.Minute), d.Err)
	}
	// Output:
	// attempt 1 retried 1h0m0s mail server busy
	// attempt 2 succeeded 0s <nil>
}

// exampleT is a minimal plbatest.TB for the example (tests pass their
// *testing.T).
type exampleT struct{ cleanups []func() }

func (*exampleT) Helper()                        {}
func (*exampleT) Name() string                   { return "Example" }
func (*exampleT) Logf(string, ...any)            {}
func (*exampleT) Errorf(f string, args ...any)   { fmt.Fprintf(os.Stderr, f+"\n", args...) }
func (t *exampleT) Fatalf(f string, args ...any) { t.Errorf(f, args...); t.FailNow() }
func (*exampleT) Fail()                          {}
func (*exampleT) FailNow()                       { panic("example failed") }
func (*exampleT) Failed() bool                   { return false }
func (t *exampleT) Cleanup(f func())             { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
