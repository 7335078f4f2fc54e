package telemetry

import (
	"context"
	"strconv"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/task"
)

// Log field names Starting puts on a delivery's context.
const (
	FieldTraceID = "trace_id"
	FieldSpanID  = "span_id"
	FieldTaskID  = "task_id"
	FieldKind    = "task_kind"
	FieldQueue   = "queue"
	FieldAttempt = "attempt"
)

// DeliveryFields are the log fields of one delivery: its consumer span and
// its task. Starting attaches them to the handler's context; a logger
// built from that context (LogFields, Logger) writes them on every line.
type DeliveryFields struct {
	TraceID trace.TraceID
	SpanID  trace.SpanID
	TaskID  string
	Kind    string
	Queue   string
	Attempt int
}

// ZapFields renders f as zap fields. The ids are hex-encoded; invalid
// (zero) trace and span ids are left out.
func (f DeliveryFields) ZapFields() []zap.Field {
	fs := make([]zap.Field, 0, 6)
	if f.TraceID.IsValid() {
		fs = append(fs, zap.String(FieldTraceID, f.TraceID.String()))
	}
	if f.SpanID.IsValid() {
		fs = append(fs, zap.String(FieldSpanID, f.SpanID.String()))
	}
	return append(fs,
		zap.String(FieldTaskID, f.TaskID),
		zap.String(FieldKind, f.Kind),
		zap.String(FieldQueue, f.Queue),
		zap.Int(FieldAttempt, f.Attempt),
	)
}

// String renders f as "key=value" pairs, for plain-text logs.
func (f DeliveryFields) String() string {
	b := make([]byte, 0, 160)
	b = append(b, FieldTraceID+"="...)
	b = append(b, f.TraceID.String()...)
	b = append(b, " "+FieldSpanID+"="...)
	b = append(b, f.SpanID.String()...)
	b = append(b, " "+FieldTaskID+"="...)
	b = append(b, f.TaskID...)
	b = append(b, " "+FieldKind+"="...)
	b = append(b, f.Kind...)
	b = append(b, " "+FieldQueue+"="...)
	b = append(b, f.Queue...)
	b = append(b, " "+FieldAttempt+"="...)
	b = strconv.AppendInt(b, int64(f.Attempt), 10)
	return string(b)
}

// deliveryCtx carries DeliveryFields. It is its own context (embedding the
// parent) so that attaching the fields costs one allocation, not two.
type deliveryCtx struct {
	context.Context
	f DeliveryFields
}

type deliveryKey struct{}

// Value returns the fields for the package's key and defers to the parent
// otherwise.
func (c *deliveryCtx) Value(key any) any {
	if _, ok := key.(deliveryKey); ok {
		return &c.f
	}
	return c.Context.Value(key)
}

// attachLogFields is the one place where Starting hands its log fields to
// the logging system. It stores them lazily on the context (rendered only
// when a line is written). When platform/log offers log.With(ctx, ...),
// this is the function to switch over.
var attachLogFields = func(ctx context.Context, f DeliveryFields) context.Context {
	return &deliveryCtx{Context: ctx, f: f}
}

// FieldsFromContext returns the delivery fields Starting attached to ctx
// (or to an ancestor of ctx).
func FieldsFromContext(ctx context.Context) (DeliveryFields, bool) {
	if ctx == nil {
		return DeliveryFields{}, false
	}
	if p, ok := ctx.Value(deliveryKey{}).(*DeliveryFields); ok && p != nil {
		return *p, true
	}
	return DeliveryFields{}, false
}

// LogFields returns the zap fields a log line written under ctx should
// carry: the delivery's fields when ctx is (inside) a delivery, else the
// trace and span id of the active span, if any. It allocates only when
// called; call it where a logger is derived, not per line.
func LogFields(ctx context.Context) []zap.Field {
	if f, ok := FieldsFromContext(ctx); ok {
		// The active span may be a child of the delivery span; prefer it.
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			f.TraceID, f.SpanID = sc.TraceID(), sc.SpanID()
		}
		return f.ZapFields()
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return nil
	}
	return []zap.Field{
		zap.String(FieldTraceID, sc.TraceID().String()),
		zap.String(FieldSpanID, sc.SpanID().String()),
	}
}

// Logger returns base with LogFields(ctx) added (base itself when ctx
// carries none; zap.NewNop() when base is nil). Handlers use it until the
// platform's context logger takes over.
func Logger(ctx context.Context, base *zap.Logger) *zap.Logger {
	if base == nil {
		base = zap.NewNop()
	}
	fs := LogFields(ctx)
	if len(fs) == 0 {
		return base
	}
	return base.With(fs...)
}

// taskFields builds the DeliveryFields of t under span context sc.
func taskFields(t *task.Task, sc trace.SpanContext) DeliveryFields {
	return DeliveryFields{
		TraceID: sc.TraceID(),
		SpanID:  sc.SpanID(),
		TaskID:  t.ID,
		Kind:    t.Kind,
		Queue:   t.Queue,
		Attempt: t.Attempt,
	}
}
