package log_test

import (
	"context"

	"go.uber.org/zap"

	plog "github.com/plba/plba/platform/log"
)

// Fields put on a context upstream (by the runtime, for a task) appear on
// every line of a logger derived from it downstream.
func ExampleFromContext() {
	base := zap.NewExample() // the host's logger in real code

	ctx := plog.With(context.Background(), zap.String("task_id", "01J9"), zap.String("queue", "orders"))
	plog.FromContext(ctx, base).Info("order stored", zap.Int("lines", 3))
	// Output:
	// {"level":"info","msg":"order stored","task_id":"01J9","queue":"orders","lines":3}
}
