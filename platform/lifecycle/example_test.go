package lifecycle_test

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/fx"

	"github.com/plba/plba/platform/lifecycle"
)

// Track ties a component's state to the fx lifecycle: Starting until its
// start func returns, Running after, Draining while its stop func runs,
// Stopped once it returned.
func ExampleRegistry_Track() {
	reg := lifecycle.NewRegistry(nil, nil)
	show := func(when string) {
		for _, s := range reg.Snapshot() {
			fmt.Printf("%s: %s is %s\n", when, s.Name, s.State)
		}
	}
	app := fx.New(
		fx.NopLogger,
		fx.Invoke(func(lc fx.Lifecycle) error {
			var c *lifecycle.Component
			c, err := reg.Track(lc, "store", lifecycle.StopHost,
				func(context.Context) error { fmt.Println("store: connect"); return nil },
				func(context.Context) error { fmt.Println("store: disconnect while", c.State()); return nil })
			return err
		}),
	)
	show("built")
	if err := app.Start(context.Background()); err != nil {
		panic(err)
	}
	show("started")
	if _, ok := reg.AllRunning(); ok {
		fmt.Println("all running")
	}
	if err := app.Stop(context.Background()); err != nil {
		panic(err)
	}
	show("stopped")
	// Output:
	// built: store is starting
	// store: connect
	// started: store is running
	// all running
	// store: disconnect while draining
	// stopped: store is stopped
}

// A start func that fails marks its component failed with the error, and
// fx rolls back the components started before it.
func ExampleRegistry_Track_failedStart() {
	reg := lifecycle.NewRegistry(nil, nil)
	app := fx.New(
		fx.NopLogger,
		fx.Invoke(func(lc fx.Lifecycle) error {
			if _, err := reg.Track(lc, "store", lifecycle.StopHost, nil, nil); err != nil {
				return err
			}
			_, err := reg.Track(lc, "admin", lifecycle.StopHost,
				func(context.Context) error { return errors.New("address in use") }, nil)
			return err
		}),
	)
	fmt.Println(app.Start(context.Background()))
	for _, s := range reg.Snapshot() {
		fmt.Printf("%s: %s %q\n", s.Name, s.State, s.LastError)
	}
	// Output:
	// admin: start: address in use
	// admin: failed "address in use"
	// store: stopped ""
}

// Components registered by hand report their own state. A failure stops
// the host only under the StopHost policy, which configuration can
// override per component; AnyFailed and AllRunning are what the probes
// read.
func ExampleNewRegistry() {
	policies := map[string]lifecycle.Policy{"source/imap": lifecycle.StayDegraded} // from configuration
	reg := lifecycle.NewRegistry(policies, func(component string, err error) {
		fmt.Printf("stopping the host: %s: %v\n", component, err)
	})
	imap := reg.MustRegister("source/imap", lifecycle.StopHost)
	pool := reg.MustRegister("pool/default", lifecycle.StopHost)
	imap.Set(lifecycle.Running, nil)
	pool.Set(lifecycle.Running, nil)
	why, ok := reg.AllRunning()
	fmt.Printf("all running: %t %q\n", ok, why)

	imap.Set(lifecycle.Degraded, errors.New("reconnecting"))
	why, ok = reg.AllRunning()
	fmt.Printf("all running: %t %q\n", ok, why)

	imap.Fail(errors.New("login refused")) // degrade policy: the host stays up
	s, failed := reg.AnyFailed()
	fmt.Println(failed, s.Name, s.Policy, s.LastError)

	pool.Fail(errors.New("backend gone")) // stop policy: the fatal func runs
	// Output:
	// all running: true ""
	// all running: false "source/imap is degraded"
	// true source/imap degrade login refused
	// stopping the host: pool/default: backend gone
}

// SetDetails lets a component report counters of its own; they appear in
// Snapshot (and so on the status page), not in the probes.
func ExampleComponent_SetDetails() {
	reg := lifecycle.NewRegistry(nil, nil)
	c := reg.MustRegister("pool/default", lifecycle.StopHost)
	c.SetDetails(func() any { return map[string]int{"processed": 3} })
	c.Set(lifecycle.Running, nil)
	for _, s := range reg.Snapshot() {
		fmt.Println(s.Name, s.State, s.Details)
	}
	// Output:
	// pool/default running map[processed:3]
}
