package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
)

// natsServer starts a NATS server with JetStream on a free loopback port,
// its store in a temp dir, shut down when the test ends.
func natsServer(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	require.NoError(t, err)
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	require.True(t, s.ReadyForConnections(10*time.Second), "nats server ready")
	return s.ClientURL()
}

// span is the part of the stdout exporter's JSON the test reads.
type span struct {
	Name        string
	SpanKind    int
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct{ TraceID, SpanID string }
	Links       []struct {
		SpanContext struct{ TraceID, SpanID string }
	}
}

// Span kinds as the exporter writes them (trace.SpanKind values).
const (
	kindProducer = 4
	kindConsumer = 5
)

func decodeSpans(t *testing.T, out []byte) []span {
	t.Helper()
	var spans []span
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var s span
		err := dec.Decode(&s)
		if errors.Is(err, io.EOF) {
			return spans
		}
		require.NoError(t, err, "stdout span JSON")
		spans = append(spans, s)
	}
}

// A task enqueued by one host process and handled by another, sharing a
// JetStream stream, continues the producer's trace: the consumer span in
// the second process is a child of the producer span in the first.
func TestTraceCrossesProcessesThroughJetStream(t *testing.T) {
	t.Parallel()
	const n = 5
	url := natsServer(t)
	rec := writeFile(t, "handled.txt", "")
	cfg := func(name string, count int, consume bool) string {
		return writeFile(t, name+".yaml", fmt.Sprintf(`host:
  apps: [loadgen]
log:
  format: json
admin:
  listen: 127.0.0.1:0
queue:
  backend: jetstream
  jetstream:
    urls: [%q]
    stream_prefix: TRACE
telemetry:
  traces:
    exporter: stdout
    sampler: always
loadgen:
  count: %d
  consume: %t
  record_file: %s
`, url, count, consume, rec))
	}

	// The producer host: emits n tasks, has no handler for them.
	var prodOut bytes.Buffer
	p := startHostOut(t, &prodOut, "--config", cfg("producer", n, false))
	p.ready(t)
	require.Eventually(t, func() bool { return strings.Contains(p.output(), `"msg":"loadgen emitted"`) }, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.wait(t, 30*time.Second), p.output())
	ids, _ := recorded(t, rec)
	require.Empty(t, ids, "the producer host handles nothing")

	// The consumer host: emits nothing, handles what is queued.
	var consOut bytes.Buffer
	c := startHostOut(t, &consOut, "--config", cfg("consumer", 0, true))
	c.ready(t)
	require.Eventually(t, func() bool { ids, _ := recorded(t, rec); return len(ids) == n }, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, c.wait(t, 30*time.Second), c.output())

	producers := map[string]span{} // by span id
	for _, s := range decodeSpans(t, prodOut.Bytes()) {
		if s.SpanKind == kindProducer {
			producers[s.SpanContext.SpanID] = s
		}
	}
	require.Len(t, producers, n, "one producer span per task")
	consumers := 0
	for _, s := range decodeSpans(t, consOut.Bytes()) {
		if s.SpanKind != kindConsumer {
			continue
		}
		consumers++
		parent, ok := producers[s.Parent.SpanID]
		require.True(t, ok, "consumer span %q has a producer span of the other process as parent", s.Name)
		require.Equal(t, parent.SpanContext.TraceID, s.SpanContext.TraceID, "same trace")
	}
	require.Equal(t, n, consumers, "one consumer span per task")
}
