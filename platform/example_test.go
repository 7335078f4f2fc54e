package platform_test

import (
	"context"
	"fmt"
	"slices"

	"go.uber.org/fx"

	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// Greeter is a whole application: a source that emits names and a handler
// that greets them. It never touches a pool, a queue or a tracer.
var Greeter = fx.Module("greeter",
	worker.SupplyRoute(task.Route{Kind: "greet", Queue: "greetings",
		Handler: task.JSON(func(ctx context.Context, who string) error {
			greeted <- "hello, " + who
			return nil
		})}),
	fx.Provide(source.AsSource(func() *names { return &names{} })),
)

// names is a source: it emits one task per name, then waits to be stopped.
type names struct{}

func (*names) Name() string { return "names" }

func (*names) Run(ctx context.Context, emit source.Emitter) error {
	for _, n := range []string{"ada", "grace", "edsger"} {
		t, err := task.NewJSON("greet", n)
		if err != nil {
			return err
		}
		if err := emit.Emit(ctx, t); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

var greeted = make(chan string, 3)

// An application plugs into the host as an fx module contributing routes
// and sources; the platform runs the queue, the pools and the sources.
func Example() {
	cfg, err := config.Load(config.Options{
		Environ: []string{},
		Sets:    []string{"admin.listen=127.0.0.1:0", "log.level=warn"},
	})
	if err != nil {
		panic(err)
	}
	app := fx.New(platform.Module(cfg, platform.Info{Version: "example"}), Greeter)
	if err := app.Start(context.Background()); err != nil {
		panic(err)
	}
	var got []string
	for range 3 {
		got = append(got, <-greeted)
	}
	if err := app.Stop(context.Background()); err != nil {
		panic(err)
	}
	slices.Sort(got) // three workers greet in any order
	for _, g := range got {
		fmt.Println(g)
	}
	// Output:
	// hello, ada
	// hello, edsger
	// hello, grace
}
