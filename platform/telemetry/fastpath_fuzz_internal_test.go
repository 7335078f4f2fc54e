package telemetry

import (
	"context"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/plba/plba/platform/task"
)

// w3c is the propagator the fast path must agree with.
var w3c = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// fastExtract is what Starting does with a task's headers: the fast path,
// else the generic propagator.
func fastExtract(ctx context.Context, t *task.Task) (context.Context, trace.SpanContext) {
	pctx, sc := (&Observer{prop: w3c}).extractFast(ctx, t)
	if pctx == nil {
		pctx = w3c.Extract(ctx, Carrier(t))
		sc = trace.SpanContextFromContext(pctx)
	}
	return pctx, sc
}

// requireSameExtract checks that the fast path reads from headers the
// span context and baggage the W3C propagators read.
func requireSameExtract(t *testing.T, headers map[string]string) {
	t.Helper()
	tk := &task.Task{Queue: "q", Kind: "k"}
	for k, v := range headers {
		tk.SetHeader(k, v)
	}
	sctx := w3c.Extract(context.Background(), Carrier(tk))
	want := trace.SpanContextFromContext(sctx)
	fctx, got := fastExtract(context.Background(), tk)
	require.Truef(t, want.Equal(got), "headers %q: propagator %v (flags %s), fast path %v (flags %s)",
		headers, want.TraceID(), want.TraceFlags(), got.TraceID(), got.TraceFlags())
	require.Equal(t, members(baggage.FromContext(sctx)), members(baggage.FromContext(fctx)), "headers %q", headers)
}

// members renders b's members in key order (Baggage.String follows map
// order).
func members(b baggage.Baggage) []string {
	out := make([]string, 0, b.Len())
	for _, m := range b.Members() {
		out = append(out, m.String())
	}
	sort.Strings(out)
	return out
}

// requireSameInject checks that the fast path writes for sc and ctx's
// baggage the headers the W3C propagators write.
func requireSameInject(t *testing.T, ctx context.Context, sc trace.SpanContext) {
	t.Helper()
	want := propagation.MapCarrier{}
	w3c.Inject(trace.ContextWithSpanContext(ctx, sc), want)
	got := &task.Task{}
	injectFast(ctx, Carrier(got), sc, formatTraceparent(sc))
	require.Equal(t, map[string]string(want), got.Headers)
}

const (
	tidHex = "0af7651916cd43dd8448eb211c80319c"
	sidHex = "b7ad6b7169203331"
)

// TestTraceparentFlagsMatchW3CPropagator: every flags byte of a version
// 00 traceparent is read as the W3C propagator reads it (the random flag
// kept, reserved bits refused) and written back as it writes it.
func TestTraceparentFlagsMatchW3CPropagator(t *testing.T) {
	const hexDigits = "0123456789abcdef"
	for f := 0; f < 256; f++ {
		flags := string([]byte{hexDigits[f>>4], hexDigits[f&15]})
		requireSameExtract(t, map[string]string{headerTraceparent: "00-" + tidHex + "-" + sidHex + "-" + flags})
		requireSameExtract(t, map[string]string{
			headerTraceparent: "00-" + tidHex + "-" + sidHex + "-" + flags,
			headerTracestate:  "vendor=x",
			headerBaggage:     "k=v",
		})
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: mustTID(t), SpanID: mustSID(t), TraceFlags: trace.TraceFlags(f)})
		requireSameInject(t, context.Background(), sc)
	}
}

// TestHostileTraceHeadersMatchW3CPropagator: malformed and hostile
// traceparent, tracestate and baggage headers are dropped (or kept) as
// the W3C propagators drop (or keep) them.
func TestHostileTraceHeadersMatchW3CPropagator(t *testing.T) {
	for _, tp := range []string{
		"",
		"ff-" + tidHex + "-" + sidHex + "-01",       // version ff is invalid
		"fe-" + tidHex + "-" + sidHex + "-01",       // highest future version
		"01-" + tidHex + "-" + sidHex + "-01",       // future version
		"01-" + tidHex + "-" + sidHex + "-01-extra", // future version, extra field
		"01-" + tidHex + "-" + sidHex + "-09",       // future version, unknown flags
		"00-" + tidHex + "-" + sidHex + "-01-extra", // version 00 allows no extra field
		"00-" + tidHex + "-" + sidHex + "-01-",      // nor an empty one
		"00-00000000000000000000000000000000-" + sidHex + "-01",
		"00-" + tidHex + "-0000000000000000-01",
		"00-0AF7651916CD43DD8448EB211C80319C-" + sidHex + "-01",
		"00-" + tidHex + "-B7AD6B7169203331-01",
		"00-" + tidHex + "-" + sidHex + "-0A",
		"0A-" + tidHex + "-" + sidHex + "-01",
		"00-" + tidHex + "0-" + sidHex + "-01",
		"00-" + tidHex[1:] + "-" + sidHex + "-01",
		"00-" + tidHex + "-" + sidHex[1:] + "-01",
		"00-" + tidHex + "-" + sidHex + "-1",
		"00-" + tidHex + "-" + sidHex + "-001",
		" 00-" + tidHex + "-" + sidHex + "-01",
		"00-" + tidHex + "-" + sidHex + "-01 ",
		"00_" + tidHex + "-" + sidHex + "-01",
		"00-" + tidHex + "_" + sidHex + "-01",
		"00-" + tidHex + "-" + sidHex + "_01",
		"00-" + tidHex + "-" + sidHex + "-\xff\xfe",
		"\x00\x00-" + tidHex + "-" + sidHex + "-01",
	} {
		for _, ts := range []string{"", "vendor=x", "a=1,b=2", "Bad=1", "a=1,a=2", "=", ",,,", "a=\x00"} {
			for _, bg := range []string{"", "k=v", "k=v;p=1,k2=v2", "=", "k", "k=%zz", ",", "k=v,=x"} {
				h := map[string]string{}
				if tp != "" {
					h[headerTraceparent] = tp
				}
				if ts != "" {
					h[headerTracestate] = ts
				}
				if bg != "" {
					h[headerBaggage] = bg
				}
				requireSameExtract(t, h)
			}
		}
	}
}

// FuzzExtractMatchesW3CPropagator: for any traceparent, tracestate and
// baggage a task may carry, the fast path reads what the W3C propagators
// read (and never panics).
func FuzzExtractMatchesW3CPropagator(f *testing.F) {
	f.Add("00-"+tidHex+"-"+sidHex+"-01", "", "")
	f.Add("00-"+tidHex+"-"+sidHex+"-00", "vendor=x", "k=v")
	f.Add("00-"+tidHex+"-"+sidHex+"-03", "a=1,b=2", "k=v;p=1")
	f.Add("01-"+tidHex+"-"+sidHex+"-01-x", "", "")
	f.Add("ff-"+tidHex+"-"+sidHex+"-01", "", "")
	f.Fuzz(func(t *testing.T, tp, ts, bg string) {
		h := map[string]string{}
		if tp != "" {
			h[headerTraceparent] = tp
		}
		if ts != "" {
			h[headerTracestate] = ts
		}
		if bg != "" {
			h[headerBaggage] = bg
		}
		requireSameExtract(t, h)
	})
}

// FuzzInjectMatchesW3CPropagator: for any span context the fast path
// writes the traceparent and tracestate the W3C propagator writes.
func FuzzInjectMatchesW3CPropagator(f *testing.F) {
	f.Add([]byte(tidHex[:16]), []byte(sidHex[:8]), byte(1), "")
	f.Add([]byte(tidHex[:16]), []byte(sidHex[:8]), byte(3), "a=1")
	f.Fuzz(func(t *testing.T, tid, sid []byte, flags byte, ts string) {
		var cfg trace.SpanContextConfig
		copy(cfg.TraceID[:], tid)
		copy(cfg.SpanID[:], sid)
		cfg.TraceFlags = trace.TraceFlags(flags)
		cfg.TraceState, _ = trace.ParseTraceState(ts)
		sc := trace.NewSpanContext(cfg)
		if !sc.IsValid() {
			return // neither writes anything for it; Enqueuing never has one
		}
		requireSameInject(t, context.Background(), sc)
	})
}

func mustTID(t *testing.T) trace.TraceID {
	t.Helper()
	tid, _ := newTraceIDs()
	return tid
}

func mustSID(t *testing.T) trace.SpanID {
	t.Helper()
	_, sid := newTraceIDs()
	return sid
}
