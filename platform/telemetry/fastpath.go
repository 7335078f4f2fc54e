package telemetry

import (
	"context"
	"encoding/hex"
	"math/rand/v2"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// This file holds the unsampled fast path: what the observer does instead
// of the generic OpenTelemetry machinery when nothing will be recorded.
// The results are the ones the SDK and the W3C propagators would give
// (the same span context on the task and in the handler's context); only
// the allocations differ.
//
// Measured on the peers harness (issue 15, BENCHMARKS.md: plba-memory,
// 50,000 tasks, c=8 and 64, against a scratch copy with one piece swapped
// for the SDK's, same run): reading the traceparent with the W3C
// propagator (TraceContext.Extract, then the remote span context it puts
// on the context) costs 2 allocations and 0.35 to 1.1 µs of CPU per task
// worked more (medians of 5 in three cells; worked/s 250 k to 384 k
// against 401 k to 456 k); the delivery answering package trace's span
// key itself (spanKey) instead of trace.ContextWithRemoteSpanContext, 2
// allocations and 0.2 to 0.7 µs (worked/s 315 k to 400 k).
// Both are kept for that. Formatting the traceparent costs nothing
// measurable now that a batch renders it once, but the per-task path of a
// ratio sampler still does it for every task (TestUnsampledTaskAllocations).

// W3C trace context and baggage header names.
const (
	headerTraceparent = "traceparent"
	headerTracestate  = "tracestate"
	headerBaggage     = "baggage"
)

// traceparentLen is the length of a version 00 traceparent:
// "00-<32 hex trace id>-<16 hex span id>-<2 hex flags>".
const traceparentLen = 55

// w3cFlags are the trace flags a version 00 traceparent carries: sampled
// and random (W3C Trace Context Level 2). The W3C propagator keeps both,
// writes no other, and refuses a version 00 traceparent with any other bit
// set; so does the fast path.
const w3cFlags = trace.FlagsSampled | trace.FlagsRandom

// formatTraceparent renders sc as a version 00 traceparent (one
// allocation, the string).
func formatTraceparent(sc trace.SpanContext) string {
	var b [traceparentLen]byte
	b[0], b[1], b[2] = '0', '0', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	f := sc.TraceFlags() & w3cFlags
	hex.Encode(b[53:55], []byte{byte(f)})
	return string(b[:])
}

// parseTraceparent parses a version 00 traceparent without allocating.
// ok is false for anything else (other versions, malformed values, zero
// ids, reserved flag bits), which the caller hands to the generic
// propagator.
func parseTraceparent(s string) (tid trace.TraceID, sid trace.SpanID, flags trace.TraceFlags, ok bool) {
	if len(s) != traceparentLen || s[0] != '0' || s[1] != '0' || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return tid, sid, 0, false
	}
	if !decodeLowerHex(tid[:], s[3:35]) || !decodeLowerHex(sid[:], s[36:52]) {
		return tid, sid, 0, false
	}
	var fb [1]byte
	if !decodeLowerHex(fb[:], s[53:55]) || trace.TraceFlags(fb[0])&^w3cFlags != 0 {
		return tid, sid, 0, false // version 00 has no other flags
	}
	if !tid.IsValid() || !sid.IsValid() {
		return tid, sid, 0, false
	}
	return tid, sid, trace.TraceFlags(fb[0]), true
}

// decodeLowerHex decodes lowercase hex src into dst (len(src) ==
// 2*len(dst)), as the W3C format requires.
func decodeLowerHex(dst []byte, src string) bool {
	if len(src) != 2*len(dst) {
		return false
	}
	bad := byte(0)
	for i := range dst {
		hi, lo := hexVal[src[2*i]], hexVal[src[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo&0x0f
	}
	return bad&0x10 == 0
}

// hexVal maps a lowercase hex digit to its value and every other byte to
// 0x10 (the invalid bit decodeLowerHex checks once at the end).
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0x10
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
	}
	return t
}()

// newTraceIDs returns a random, valid trace and span id (math/rand/v2's
// per-thread ChaCha8 generator: no lock, no allocation).
func newTraceIDs() (trace.TraceID, trace.SpanID) {
	var tid trace.TraceID
	var sid trace.SpanID
	for !tid.IsValid() {
		putUint64(tid[:8], rand.Uint64())
		putUint64(tid[8:], rand.Uint64())
	}
	for !sid.IsValid() {
		putUint64(sid[:], rand.Uint64())
	}
	return tid, sid
}

func putUint64(b []byte, v uint64) {
	_ = b[7]
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

// presetIDs carries ids minted by the observer (to ask the sampler before
// starting a span) to the SDK's id generator, so that the span the SDK
// then starts has the ids the sampler decided on.
type presetIDs struct {
	tid trace.TraceID
	sid trace.SpanID
}

type presetIDsKey struct{}

// idGenerator is the SDK id generator of the tracer provider New builds:
// random ids (math/rand/v2), or the ones the observer preset on ctx.
type idGenerator struct{}

// NewIDs returns the preset ids on ctx, else new random ones.
func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if p, ok := ctx.Value(presetIDsKey{}).(*presetIDs); ok {
		return p.tid, p.sid
	}
	return newTraceIDs()
}

// NewSpanID returns a new random span id.
func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		putUint64(sid[:], rand.Uint64())
	}
	return sid
}

// injectFast writes sc into t's headers as the W3C trace context
// propagator would, and the baggage of ctx as the baggage propagator
// would.
func injectFast(ctx context.Context, c propagation.TextMapCarrier, sc trace.SpanContext, traceparent string) {
	c.Set(headerTraceparent, traceparent)
	if ts := sc.TraceState(); ts.Len() > 0 {
		c.Set(headerTracestate, ts.String())
	}
	propagation.Baggage{}.Inject(ctx, c)
}

// A delivery is the non-recording span of an unsampled delivery: the
// producer's span context, read by trace.SpanFromContext from the
// handler's context (what trace.ContextWithRemoteSpanContext would put
// there, without its two allocations).
var _ trace.Span = (*delivery)(nil)

// SpanContext returns the handler's span context (remote for an unsampled
// delivery: the producer's).
func (d *delivery) SpanContext() trace.SpanContext {
	cfg := trace.SpanContextConfig{TraceID: d.tid, SpanID: d.sid, TraceFlags: d.flags, Remote: d.hasSpan}
	if d.ts != nil {
		cfg.TraceState = *d.ts
	}
	return trace.NewSpanContext(cfg)
}

func (d *delivery) IsRecording() bool                       { return false }
func (d *delivery) SetStatus(codes.Code, string)            {}
func (d *delivery) SetAttributes(...attribute.KeyValue)     {}
func (d *delivery) End(...trace.SpanEndOption)              {}
func (d *delivery) RecordError(error, ...trace.EventOption) {}
func (d *delivery) AddEvent(string, ...trace.EventOption)   {}
func (d *delivery) AddLink(trace.Link)                      {}
func (d *delivery) SetName(string)                          {}

// TracerProvider returns the observer's tracer provider.
func (d *delivery) TracerProvider() trace.TracerProvider { return d.ls.tp }

// spanKey is the key under which package trace keeps the active span in a
// context (unexported there), found once by asking trace.SpanFromContext
// through a probing context; nil if the probe did not work, and then the
// fast path falls back to trace.ContextWithRemoteSpanContext.
var spanKey = probeSpanKey()

type keyProbe struct {
	context.Context
	keys []any
}

func (p *keyProbe) Value(k any) any {
	p.keys = append(p.keys, k)
	return nil
}

func probeSpanKey() any {
	p := &keyProbe{Context: context.Background()}
	_ = trace.SpanFromContext(p)
	if len(p.keys) != 1 {
		return nil
	}
	key := p.keys[0]
	// Check that a context answering the key is what package trace reads
	// (and SpanContextFromContext uses the same key).
	tid, sid := newTraceIDs()
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true})
	d := &delivery{Context: context.Background(), hasSpan: true}
	d.setSpanContext(sc)
	if k := (spanKeyCheck{d, key}); !trace.SpanContextFromContext(k).Equal(sc) || trace.SpanFromContext(k) != trace.Span(d) {
		return nil
	}
	return key
}

// spanKeyCheck answers key with its delivery's span, for probeSpanKey.
type spanKeyCheck struct {
	*delivery
	key any
}

func (c spanKeyCheck) Value(k any) any {
	if k == c.key {
		return trace.Span(c.delivery)
	}
	return c.delivery.Context.Value(k)
}
