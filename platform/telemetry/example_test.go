package telemetry_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/plba/plba/platform/log"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/telemetry"
)

// A task's trace crosses the queue in its headers: the delivery's consumer
// span is a child of the producer span started when it was enqueued, and
// the handler's log lines name the task (and the span).
func Example() {
	ctx := context.Background()
	spans := tracetest.NewInMemoryExporter()
	cfg := telemetry.Config{}
	cfg.Traces.Sampler = telemetry.SamplerAlways
	cfg.Metrics.Enabled = telemetry.Bool(false)
	tel, err := telemetry.New(ctx, cfg, telemetry.WithSyncSpanExporter(spans))
	if err != nil {
		panic(err)
	}
	defer func() { _ = tel.Shutdown(ctx) }()
	obs := tel.Observer()

	// What the producer does (worker.Producer calls the observer).
	t := &task.Task{ID: "t-1", Kind: "invoice.create", Queue: "billing"}
	t.Prepare(time.Now())
	batch := []*task.Task{t}
	obs.Enqueued(obs.Enqueuing(ctx, batch), batch, nil)

	// What a worker does with the delivery (here in the same process).
	t.Attempt = 1
	hctx := obs.Starting(ctx, t)
	var line bytes.Buffer
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zapcore.EncoderConfig{MessageKey: "msg"}), zapcore.AddSync(&line), zapcore.InfoLevel))
	log.FromContext(hctx, logger).Info("creating invoice")
	obs.Finished(hctx, t, task.Succeeded, nil, "", time.Millisecond)

	// Trace and span ids are random: shown as <id> here.
	fmt.Print(regexp.MustCompile(`"[0-9a-f]{16,32}"`).ReplaceAllString(line.String(), "<id>"))

	got := spans.GetSpans()
	for _, s := range got {
		fmt.Println(s.Name, s.SpanKind)
	}
	fmt.Println("consumer is the producer's child:", got[1].Parent.SpanID() == got[0].SpanContext.SpanID())
	// Output:
	// {"msg":"creating invoice","trace_id":<id>,"span_id":<id>,"task_id":"t-1","task_kind":"invoice.create","queue":"billing","attempt":1}
	// billing publish producer
	// billing process consumer
	// consumer is the producer's child: true
}
