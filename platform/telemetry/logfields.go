package telemetry

import (
	"context"
	"strconv"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/plba/plba/platform/log"
)

// Log field names Starting puts on a delivery's context.
const (
	FieldTraceID = "trace_id"
	FieldSpanID  = "span_id"
	FieldTaskID  = "task_id"
	FieldKind    = "task_kind"
	FieldQueue   = "queue"
	FieldAttempt = "attempt"
	// FieldSource names the source on a poll's lines.
	FieldSource = "source"
)

// DeliveryFields are the log fields of one delivery: its consumer span and
// its task. Starting attaches them to the handler's context through
// platform/log (the delivery is a log.FieldsCarrier), so a logger built
// from that context with
// log.FromContext (or Logger) writes them on every line.
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

// MarshalLogObject writes f's fields inline (zap.Inline), so that a logger
// derived from a delivery's context renders them only when a line is
// written. Invalid (zero) trace and span ids are left out.
func (f *DeliveryFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	if f.TraceID.IsValid() {
		enc.AddString(FieldTraceID, f.TraceID.String())
	}
	if f.SpanID.IsValid() {
		enc.AddString(FieldSpanID, f.SpanID.String())
	}
	enc.AddString(FieldTaskID, f.TaskID)
	enc.AddString(FieldKind, f.Kind)
	enc.AddString(FieldQueue, f.Queue)
	enc.AddInt(FieldAttempt, f.Attempt)
	return nil
}

// FieldsFromContext returns the delivery fields Starting attached to ctx
// (or to an ancestor of ctx); the innermost delivery wins.
func FieldsFromContext(ctx context.Context) (DeliveryFields, bool) {
	if ctx == nil {
		return DeliveryFields{}, false
	}
	if d, ok := ctx.Value(deliveryKey{}).(*delivery); ok {
		return d.fields(), true
	}
	return DeliveryFields{}, false
}

// LogFields returns the zap fields a log line written under ctx should
// carry: the delivery's fields when ctx is (inside) a delivery, else the
// trace and span id of the active span, if any. The active span may be a
// child of the delivery's span; its ids win. It allocates only when
// called.
func LogFields(ctx context.Context) []zap.Field {
	if f, ok := FieldsFromContext(ctx); ok {
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

// Logger returns base with the fields platform/log carries on ctx
// (log.FromContext: a delivery's or a poll's fields, and whatever else was
// added with log.With), plus the trace and span id of ctx's active span
// when ctx carries no delivery or poll fields. base itself when there is
// nothing to add; zap.NewNop() when base is nil.
func Logger(ctx context.Context, base *zap.Logger) *zap.Logger {
	l := log.FromContext(ctx, base)
	if hasTraceFields(ctx) {
		return l
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return l
	}
	return l.With(zap.String(FieldTraceID, sc.TraceID().String()), zap.String(FieldSpanID, sc.SpanID().String()))
}

// hasTraceFields reports whether ctx carries delivery or poll fields.
func hasTraceFields(ctx context.Context) bool {
	for _, f := range log.Fields(ctx) {
		if f.Type != zapcore.InlineMarshalerType {
			continue
		}
		switch f.Interface.(type) {
		case *DeliveryFields, *PollFields:
			return true
		}
	}
	return false
}

// PollFields are the log fields of one source poll: its span and the
// source's name. StartPoll attaches them to the poll's context.
type PollFields struct {
	TraceID trace.TraceID
	SpanID  trace.SpanID
	Source  string
}

// MarshalLogObject writes f's fields inline; invalid ids are left out.
func (f *PollFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	if f.TraceID.IsValid() {
		enc.AddString(FieldTraceID, f.TraceID.String())
	}
	if f.SpanID.IsValid() {
		enc.AddString(FieldSpanID, f.SpanID.String())
	}
	enc.AddString(FieldSource, f.Source)
	return nil
}
