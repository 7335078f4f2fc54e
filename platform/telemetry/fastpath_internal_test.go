package telemetry

import (
	"context"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TestTraceparentMatchesW3CPropagator: the fast path writes what the W3C
// propagator writes and reads what it reads.
func TestTraceparentMatchesW3CPropagator(t *testing.T) {
	for _, flags := range []trace.TraceFlags{0, trace.FlagsSampled} {
		tid, sid := newTraceIDs()
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags})
		c := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
		require.Equal(t, c[headerTraceparent], formatTraceparent(sc))

		gtid, gsid, gflags, ok := parseTraceparent(c[headerTraceparent])
		require.True(t, ok)
		require.Equal(t, tid, gtid)
		require.Equal(t, sid, gsid)
		require.Equal(t, flags, gflags)
	}
	for _, bad := range []string{
		"",
		"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",    // other version: generic path
		"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",    // upper case
		"00-00000000000000000000000000000000-b7ad6b7169203331-01",    // zero trace id
		"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",    // zero span id
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",    // bad flags
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-xx", // too long
		"00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	} {
		_, _, _, ok := parseTraceparent(bad)
		require.False(t, ok, bad)
	}
}

// TestSpanKeyProbe: the key found for package trace's active span is the
// one it reads, so an unsampled delivery's context needs no extra
// allocation to carry the producer's span context.
func TestSpanKeyProbe(t *testing.T) {
	require.NotNil(t, spanKey)
	tid, sid := newTraceIDs()
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true})
	d := &delivery{Context: context.Background(), hasSpan: true}
	d.setSpanContext(sc)
	require.True(t, trace.SpanContextFromContext(d).Equal(sc))
	require.False(t, trace.SpanFromContext(d).IsRecording())
	child := context.WithValue(d, struct{}{}, 1)
	require.True(t, trace.SpanContextFromContext(child).Equal(sc))
	require.LessOrEqual(t, int(unsafe.Sizeof(delivery{})), 80, "one 80-byte allocation per delivery")
}
