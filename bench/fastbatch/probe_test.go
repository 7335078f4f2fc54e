//go:build fastbatchprobe

package fastbatchprobe

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// startServer starts an embedded JetStream server with a file store in a
// test directory, listening on a loopback port of its own.
func startServer(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// connect connects to s in process (plba's embedded mode) or over loopback
// TCP (an external server).
func connect(t testing.TB, s *server.Server, transport string) *nats.Conn {
	t.Helper()
	var opts []nats.Option
	if transport == "inprocess" {
		opts = append(opts, nats.InProcessServer(s))
	}
	return dial(t, s.ClientURL(), opts...)
}

func dial(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// workStream creates a work-queue stream named name on subject subj (and
// subj+".s.*" for schedules, as plba does) that allows fast batches.
func workStream(t testing.TB, js jetstream.JetStream, name, subj string, mod func(*jetstream.StreamConfig)) jetstream.Stream {
	t.Helper()
	cfg := jetstream.StreamConfig{
		Name:              name,
		Subjects:          []string{subj, subj + ".s.*"},
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           jetstream.FileStorage,
		Duplicates:        2 * time.Minute,
		AllowRollup:       true,
		AllowBatchPublish: true,
	}
	if mod != nil {
		mod(&cfg)
	}
	st, err := js.CreateStream(context.Background(), cfg)
	if err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	return st
}

// taskMsg builds message i of a run the way plba's encodeTask shapes a
// task: 128 bytes of payload, a unique Nats-Msg-Id (the task key), a
// Plba-Task line of about 60 bytes and a W3C traceparent.
func taskMsg(subj, run string, i int, payload []byte) *nats.Msg {
	id := run + "-" + strconv.Itoa(i)
	var tp [55]byte
	copy(tp[:], "00-4bf92f3577b34da6a3ce929d0e0e4736-")
	var span [8]byte
	for j, k := 0, i; j < 8; j, k = j+1, k>>8 {
		span[7-j] = byte(k)
	}
	hex.Encode(tp[36:52], span[:])
	copy(tp[52:], "-00")
	vals := make([]string, 3)
	vals[0] = id
	vals[1] = "kind=probe.send id=" + id + " at=2026-01-02T15:04:05.123456789Z"
	vals[2] = string(tp[:])
	h := make(nats.Header, 3)
	h["Nats-Msg-Id"] = vals[0:1:1]
	h["Plba-Task"] = vals[1:2:2]
	h["traceparent"] = vals[2:3:3]
	return &nats.Msg{Subject: subj, Header: h, Data: payload}
}

// publishAsync is plba's path today: one PublishMsgAsync per message, at
// most window unacknowledged (a token taken before the publish and given
// back by the ack or error callback, as window.go does), then a wait for
// every ack; with batch > 0, that wait ends every batch messages (one
// Enqueue call each).
func publishAsync(t testing.TB, nc *nats.Conn, subj, run string, n, window, batch int, payload []byte) {
	t.Helper()
	tokens := make(chan struct{}, window)
	var acked, failed atomic.Int64
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(window),
		jetstream.WithPublishAsyncTimeout(10*time.Second),
		jetstream.WithPublishAsyncAckHandler(func(jetstream.JetStream, *nats.Msg, *jetstream.PubAck) {
			acked.Add(1)
			<-tokens
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			failed.Add(1)
			<-tokens
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	if batch <= 0 {
		batch = n
	}
	for start := 0; start < n; start += batch {
		for i := start; i < min(start+batch, n); i++ {
			tokens <- struct{}{}
			if _, err := js.PublishMsgAsync(taskMsg(subj, run, i, payload)); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			t.Fatal("acks missing")
		}
	}
	if acked.Load() != int64(n) || failed.Load() != 0 {
		t.Fatalf("acked %d, failed %d of %d", acked.Load(), failed.Load(), n)
	}
}

// fastOpts is a FastPublisher's flow control: ack every flow messages, at
// most maxAcks flow windows unacknowledged.
type fastOpts struct {
	batch   int // messages per batch (one FastPublisher each); 0: all in one
	flow    uint16
	maxAcks uint16
}

// publishFast publishes the n messages through jetstreamext.FastPublisher
// in batches of o.batch, each ended by CommitMsg of its last message, and
// checks every commit ack counts the whole batch. It returns the sum of
// the commit acks' BatchSize.
func publishFast(t testing.TB, nc *nats.Conn, subj, run string, n int, o fastOpts, payload []byte) uint64 {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	size := o.batch
	if size <= 0 {
		size = n
	}
	var counted uint64
	for start := 0; start < n; start += size {
		end := min(start+size, n)
		var asyncErr atomic.Value
		fp, err := jetstreamext.NewFastPublisher(js,
			jetstreamext.FastPublishFlowControl{Flow: o.flow, MaxOutstandingAcks: o.maxAcks, AckTimeout: 10 * time.Second},
			jetstreamext.WithFastPublisherErrorHandler(func(err error) { asyncErr.CompareAndSwap(nil, err) }),
		)
		if err != nil {
			t.Fatal(err)
		}
		for i := start; i < end-1; i++ {
			if _, err := fp.AddMsg(taskMsg(subj, run, i, payload)); err != nil {
				t.Fatalf("add %d: %v (async: %v)", i, err, asyncErr.Load())
			}
		}
		ack, err := fp.CommitMsg(context.Background(), taskMsg(subj, run, end-1, payload))
		if err != nil {
			t.Fatalf("commit %d: %v (async: %v)", end-1, err, asyncErr.Load())
		}
		if e := asyncErr.Load(); e != nil {
			t.Fatalf("batch at %d: async error %v", start, e)
		}
		if ack.BatchSize != uint64(end-start) {
			t.Fatalf("batch at %d: commit ack counts %d of %d", start, ack.BatchSize, end-start)
		}
		counted += ack.BatchSize
	}
	return counted
}

// usage is the process's CPU time (user+sys, the embedded server
// included) and its heap allocation count.
type usage struct {
	cpu    time.Duration
	allocs uint64
}

func measure() usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), allocs: ms.Mallocs}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envList(name, def string) []string {
	if v := os.Getenv(name); v != "" {
		return strings.Split(v, ",")
	}
	return strings.Split(def, ",")
}

// TestCost publishes N (FASTBATCH_N, 200000) plba-shaped messages per run
// through each method, REPS (FASTBATCH_REPS, 3) times interleaved, on each
// transport (FASTBATCH_TRANSPORTS, "inprocess,tcp,external"), and logs the
// median CPU µs and allocations per message: of the whole process (client
// and embedded server) for inprocess and tcp, of the client alone for
// external (the server in a child process, its CPU logged apart).
//
// FASTBATCH_METHODS picks the methods (default build,async4096,fast-all,
// fast-b1000,fast-b100; also async-b1000, async-b100, async-b10, fast-b10,
// fast-all-f500, fast-b1000-f500): "build" only builds the messages, what
// every method spends before it publishes; async4096 is PublishMsgAsync
// with 4096 in flight and one wait for all acks, async-bN waits for all
// acks every N messages (one Enqueue call each); fast-all publishes one
// FastPublisher batch, fast-bN commits one every N messages.
func TestCost(t *testing.T) {
	n := envInt("FASTBATCH_N", 200_000)
	reps := envInt("FASTBATCH_REPS", 3)
	payload := make([]byte, 128)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	type method struct {
		name  string
		fast  *fastOpts
		batch int // async: messages per wait for all acks
	}
	all := map[string]method{
		"build":           {name: "build"},
		"async4096":       {name: "async4096"},
		"async-b1000":     {name: "async-b1000", batch: 1000},
		"async-b100":      {name: "async-b100", batch: 100},
		"async-b10":       {name: "async-b10", batch: 10},
		"fast-b10":        {name: "fast-b10", fast: &fastOpts{batch: 10, flow: 100, maxAcks: 2}},
		"fast-all":        {name: "fast-all", fast: &fastOpts{flow: 100, maxAcks: 2}},
		"fast-all-f500":   {name: "fast-all-f500", fast: &fastOpts{flow: 500, maxAcks: 4}},
		"fast-b1000":      {name: "fast-b1000", fast: &fastOpts{batch: 1000, flow: 100, maxAcks: 2}},
		"fast-b100":       {name: "fast-b100", fast: &fastOpts{batch: 100, flow: 100, maxAcks: 2}},
		"fast-b1000-f500": {name: "fast-b1000-f500", fast: &fastOpts{batch: 1000, flow: 500, maxAcks: 4}},
	}
	var methods []method
	for _, name := range envList("FASTBATCH_METHODS", "build,async4096,fast-all,fast-b1000,fast-b100") {
		m, ok := all[name]
		if !ok {
			t.Fatalf("unknown method %q", name)
		}
		methods = append(methods, m)
	}
	for _, transport := range envList("FASTBATCH_TRANSPORTS", "inprocess,tcp,external") {
		t.Run(transport, func(t *testing.T) {
			var nc *nats.Conn
			var ext *external
			if transport == "external" {
				ext = startExternal(t)
				nc = dial(t, ext.url)
			} else {
				nc = connect(t, startServer(t), transport)
			}
			srvCPU := func() time.Duration {
				if ext == nil {
					return 0
				}
				return ext.cpu(t)
			}
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			cpu := map[string][]float64{}
			allocs := map[string][]float64{}
			walls := map[string][]float64{}
			scpu := map[string][]float64{}
			for rep := range reps {
				for mi, m := range methods {
					name := fmt.Sprintf("P%d_%d", rep, mi)
					subj := "plba.q." + name
					run := fmt.Sprintf("k%d%d", rep, mi)
					var st jetstream.Stream
					if m.name != "build" {
						st = workStream(t, js, name, subj, nil)
					}
					runtime.GC()
					before, sbefore, start := measure(), srvCPU(), time.Now()
					switch {
					case m.name == "build":
						var keep *nats.Msg
						for i := range n {
							keep = taskMsg(subj, run, i, payload)
						}
						runtime.KeepAlive(keep)
					case m.fast == nil:
						publishAsync(t, nc, subj, run, n, 4096, m.batch, payload)
					default:
						if got := publishFast(t, nc, subj, run, n, *m.fast, payload); got != uint64(n) {
							t.Fatalf("%s: commit acks count %d of %d", m.name, got, n)
						}
					}
					wall := time.Since(start)
					after, safter := measure(), srvCPU()
					scpu[m.name] = append(scpu[m.name], float64(safter-sbefore)/float64(time.Microsecond)/float64(n))
					cpu[m.name] = append(cpu[m.name], float64(after.cpu-before.cpu)/float64(time.Microsecond)/float64(n))
					allocs[m.name] = append(allocs[m.name], float64(after.allocs-before.allocs)/float64(n))
					walls[m.name] = append(walls[m.name], wall.Seconds())
					if st == nil {
						continue
					}
					info, err := st.Info(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if info.State.Msgs != uint64(n) {
						t.Fatalf("%s: stream holds %d messages, want %d", m.name, info.State.Msgs, n)
					}
					if m.fast != nil && rep == 0 {
						// The same Msg-Ids again, in one batch: all
						// duplicates, nothing new may be stored.
						got := publishFast(t, nc, subj, run, n, fastOpts{flow: 100, maxAcks: 2}, payload)
						again, err := st.Info(ctx)
						if err != nil {
							t.Fatal(err)
						}
						t.Logf("%s: stream holds %d (last seq %d); re-published %d duplicates: commit ack counts %d, stream holds %d (last seq %d)",
							m.name, info.State.Msgs, info.State.LastSeq, n, got, again.State.Msgs, again.State.LastSeq)
						if again.State.Msgs != uint64(n) || again.State.LastSeq != info.State.LastSeq {
							t.Fatalf("%s: duplicates were stored", m.name)
						}
					}
					if err := js.DeleteStream(ctx, name); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, m := range methods {
				t.Logf("%-16s %s n=%d reps=%d: CPU µs/msg median %.2f %v, allocs/msg median %.1f %v, wall s %v",
					m.name, transport, n, reps, median(cpu[m.name]), round(cpu[m.name]), median(allocs[m.name]), round(allocs[m.name]), round(walls[m.name]))
				if ext != nil {
					t.Logf("%-16s %s: server process CPU µs/msg median %.2f %v", m.name, transport, median(scpu[m.name]), round(scpu[m.name]))
				}
			}
		})
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(int(x*100+0.5)) / 100
	}
	return out
}
