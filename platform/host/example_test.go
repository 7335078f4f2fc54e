package host_test

import (
	"context"
	"fmt"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/host"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// An application is an fx.Option; its main hands it to host.Main, which
// gives it the whole host command line: run, config show, config
// validate, version, the exit statuses and the signal handling.
//
//	func main() { os.Exit(host.Main(os.Args[1:], host.App("greetings", greetings))) }
//
// Here `config validate` finds a bad value: a configuration problem is
// exit status 2 (its message, naming the key, goes to stderr).
func Example() {
	greetings := fx.Module("greetings",
		worker.SupplyRoute(task.Route{Kind: "greet", Handler: task.HandlerFunc(func(ctx context.Context, t *task.Task) error {
			zap.L().Info("hello", zap.ByteString("who", t.Payload))
			return nil
		})}),
	)
	code := host.Main([]string{"config", "validate", "--set", "log.level=loud"}, host.Name("greetings"), host.App("greetings", greetings))
	fmt.Println("exit status", code)
	// Output: exit status 2
}
