package lease

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// counting is a bucket that counts its renewals (Update), its attempts
// (Create) and its status reads; with cached set, Status answers the first status it read without
// asking the server again (the cost of a holder that does not read the
// bucket's status, for comparison).
type counting struct {
	jetstream.KeyValue
	updates, statuses, creates atomic.Int64
	cached                     bool
	first                      atomic.Pointer[jetstream.KeyValueStatus]
}

func (c *counting) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	c.creates.Add(1)
	return c.KeyValue.Create(ctx, key, value, opts...)
}

func (c *counting) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	c.updates.Add(1)
	return c.KeyValue.Update(ctx, key, value, rev)
}

func (c *counting) Status(ctx context.Context) (jetstream.KeyValueStatus, error) {
	if c.cached {
		if st := c.first.Load(); st != nil {
			return *st, nil
		}
	}
	c.statuses.Add(1)
	st, err := c.KeyValue.Status(ctx)
	if err == nil {
		c.first.CompareAndSwap(nil, &st)
	}
	return st, err
}

// cpuTime is the CPU time (user and system) of this process so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the CPU time of process pid so far (Linux /proc), 0 when
// it cannot be read.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ 100
}

// BenchmarkRenewals holds n leases of one KV (exclusive sources on one
// host) with the default TTL for a window and reports what their renewals
// cost: renewals and status reads per second, messages the client sent
// to the server per second (requests: renewals and status reads), bytes
// it received per renewal, and CPU per renewal. start=together takes the
// leases one after the other at once (a host that starts); start=spread
// spaces them evenly over a renewal's interval (a quarter of the TTL),
// the renewals' worst case for sharing their status reads. On the embedded server
// (in this process) the CPU is the client's and the server's; on
// PLBA_TEST_NATS_URL it is the client's, and the server's too when
// PLBA_BENCH_SERVER_PID names its process. mode=status is the holder as
// it is; mode=cached answers every status read from the first (no
// request), the cost without the reads. Run with -benchtime=1x: each
// run takes the window (PLBA_BENCH_WINDOW, default 12s) after the
// bucket is the TTL old and the leases are held.
func BenchmarkRenewals(b *testing.B) {
	window := 12 * time.Second
	if w, err := time.ParseDuration(os.Getenv("PLBA_BENCH_WINDOW")); err == nil {
		window = w
	}
	servers := []string{"embedded"}
	if os.Getenv("PLBA_TEST_NATS_URL") != "" {
		servers = append(servers, "external")
	}
	for _, server := range servers {
		for _, n := range []int{1, 100, 1000} {
			for _, start := range []string{"together", "spread"} {
				for _, mode := range []string{"status", "cached"} {
					b.Run(fmt.Sprintf("server=%s/n=%d/start=%s/mode=%s", server, n, start, mode), func(b *testing.B) {
						for range b.N {
							renewals(b, server, n, start == "spread", mode == "cached", window)
						}
					})
				}
			}
		}
	}
}

func renewals(b *testing.B, server string, n int, spread, cached bool, window time.Duration) {
	url, serverPid := os.Getenv("PLBA_TEST_NATS_URL"), 0
	if server == "embedded" {
		opts, err := embedded.Config{StoreDir: b.TempDir(), Listen: "127.0.0.1:0"}.Options()
		require.NoError(b, err)
		srv, err := embedded.StartWithOptions(context.Background(), opts, 20*time.Second, nil)
		require.NoError(b, err)
		defer func() { _ = srv.Shutdown(context.Background()) }()
		url = srv.ClientURL()
	} else {
		serverPid, _ = strconv.Atoi(os.Getenv("PLBA_BENCH_SERVER_PID"))
	}
	bucket := fmt.Sprintf("plba_bench_renewals_%d", time.Now().UnixNano())
	nc, err := nats.Connect(url, nats.Name("bench"))
	require.NoError(b, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(b, err)
	defer func() { _ = js.DeleteKeyValue(context.Background(), bucket) }()
	k, err := OpenKV(b.Context(), js, KVConfig{Bucket: bucket, Holder: "bench"})
	require.NoError(b, err)
	c := &counting{KeyValue: k.kv, cached: cached}
	k.kv = c
	time.Sleep(k.cfg.TTL) // the bucket is the TTL old: no wait for a lease
	holds := make([]Hold, n)
	for i := range n {
		ctx, cancel := context.WithTimeout(b.Context(), 10*time.Second)
		holds[i], err = k.Lease(fmt.Sprintf("source-%d", i)).Acquire(ctx)
		cancel()
		require.NoError(b, err)
		if spread {
			time.Sleep(k.cfg.TTL / 4 / time.Duration(n))
		}
	}
	defer func() {
		for _, h := range holds {
			_ = h.Release(context.Background())
		}
	}()
	time.Sleep(k.cfg.TTL / 4) // the renewals are under way, spread as the acquisitions were

	b.ResetTimer()
	u0, s0, st0 := c.updates.Load(), c.statuses.Load(), nc.Stats()
	cpu0, scpu0, t0 := cpuTime(b), procCPU(serverPid), time.Now()
	time.Sleep(window)
	u1, s1, st1 := c.updates.Load(), c.statuses.Load(), nc.Stats()
	cpu1, scpu1, el := cpuTime(b), procCPU(serverPid), time.Since(t0)
	b.StopTimer()

	for _, h := range holds {
		select {
		case <-h.Lost():
			b.Fatalf("a hold was lost during the window")
		default:
		}
	}
	ren := float64(u1 - u0)
	b.ReportMetric(ren/el.Seconds(), "renewals/s")
	b.ReportMetric(float64(s1-s0)/el.Seconds(), "status/s")
	b.ReportMetric(float64(st1.OutMsgs-st0.OutMsgs)/el.Seconds(), "req/s")
	b.ReportMetric(float64(st1.InBytes-st0.InBytes)/ren, "Brecv/renewal")
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/ren, "cpu-µs/renewal")
	if serverPid != 0 {
		b.ReportMetric(float64((scpu1-scpu0).Microseconds())/ren, "srvcpu-µs/renewal")
	}
}

// BenchmarkAttempts measures what a standby host's attempts cost: n
// leases held by one KV, and a second KV (its own connection, as another
// host) trying to take each of them every third of the TTL. It reports
// the standby's attempts, status reads and messages per second, the bytes
// it received per attempt, and the CPU per attempt: the process's CPU
// during a window with the standby, less that of a window without it
// (the holder's renewals), on the embedded server (client and server) or
// PLBA_TEST_NATS_URL (the client; PLBA_BENCH_SERVER_PID adds the
// server's). Run with -benchtime=1x.
func BenchmarkAttempts(b *testing.B) {
	window := 12 * time.Second
	if w, err := time.ParseDuration(os.Getenv("PLBA_BENCH_WINDOW")); err == nil {
		window = w
	}
	servers := []string{"embedded"}
	if os.Getenv("PLBA_TEST_NATS_URL") != "" {
		servers = append(servers, "external")
	}
	for _, server := range servers {
		for _, n := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("server=%s/n=%d", server, n), func(b *testing.B) {
				for range b.N {
					attempts(b, server, n, window)
				}
			})
		}
	}
}

func attempts(b *testing.B, server string, n int, window time.Duration) {
	url, serverPid := os.Getenv("PLBA_TEST_NATS_URL"), 0
	if server == "embedded" {
		opts, err := embedded.Config{StoreDir: b.TempDir(), Listen: "127.0.0.1:0"}.Options()
		require.NoError(b, err)
		srv, err := embedded.StartWithOptions(context.Background(), opts, 20*time.Second, nil)
		require.NoError(b, err)
		defer func() { _ = srv.Shutdown(context.Background()) }()
		url = srv.ClientURL()
	} else {
		serverPid, _ = strconv.Atoi(os.Getenv("PLBA_BENCH_SERVER_PID"))
	}
	bucket := fmt.Sprintf("plba_bench_attempts_%d", time.Now().UnixNano())
	open := func(holder string) (*nats.Conn, *KV, *counting) {
		nc, err := nats.Connect(url, nats.Name(holder))
		require.NoError(b, err)
		js, err := jetstream.New(nc)
		require.NoError(b, err)
		k, err := OpenKV(b.Context(), js, KVConfig{Bucket: bucket, Holder: holder})
		require.NoError(b, err)
		c := &counting{KeyValue: k.kv}
		k.kv = c
		return nc, k, c
	}
	nc, k, _ := open("holder")
	defer nc.Close()
	defer func() {
		if js, err := jetstream.New(nc); err == nil {
			_ = js.DeleteKeyValue(context.Background(), bucket)
		}
	}()
	time.Sleep(k.cfg.TTL) // the bucket is the TTL old: no wait for a lease
	holds := make([]Hold, n)
	var err error
	for i := range n {
		ctx, cancel := context.WithTimeout(b.Context(), 10*time.Second)
		holds[i], err = k.Lease(fmt.Sprintf("source-%d", i)).Acquire(ctx)
		cancel()
		require.NoError(b, err)
	}
	defer func() {
		for _, h := range holds {
			_ = h.Release(context.Background())
		}
	}()
	// The holder alone.
	time.Sleep(k.cfg.TTL / 4)
	cpu0, scpu0, t0 := cpuTime(b), procCPU(serverPid), time.Now()
	time.Sleep(window)
	alone, salone := float64(cpuTime(b)-cpu0)/time.Since(t0).Seconds(), float64(procCPU(serverPid)-scpu0)/time.Since(t0).Seconds()

	snc, sk, sc := open("standby")
	defer snc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, n)
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			if h, err := sk.Lease(fmt.Sprintf("source-%d", i)).Acquire(ctx); err == nil {
				_ = h.Release(context.Background())
			}
		}()
	}
	defer func() {
		cancel()
		for range n {
			<-done
		}
	}()
	time.Sleep(sk.cfg.TTL / 3) // every lease tried once

	b.ResetTimer()
	a0, s0, st0 := sc.creates.Load(), sc.statuses.Load(), snc.Stats()
	cpu1, scpu1, t1 := cpuTime(b), procCPU(serverPid), time.Now()
	time.Sleep(window)
	a1, s1, st1 := sc.creates.Load(), sc.statuses.Load(), snc.Stats()
	cpu2, scpu2, el := cpuTime(b), procCPU(serverPid), time.Since(t1)
	b.StopTimer()

	att := float64(a1 - a0)
	b.ReportMetric(att/el.Seconds(), "attempts/s")
	b.ReportMetric(float64(s1-s0)/el.Seconds(), "status/s")
	b.ReportMetric(float64(st1.OutMsgs-st0.OutMsgs)/el.Seconds(), "req/s")
	b.ReportMetric(float64(st1.InBytes-st0.InBytes)/att, "Brecv/attempt")
	b.ReportMetric((float64(cpu2-cpu1)-alone*el.Seconds())/1e3/att, "cpu-µs/attempt")
	if serverPid != 0 {
		b.ReportMetric((float64(scpu2-scpu1)-salone*el.Seconds())/1e3/att, "srvcpu-µs/attempt")
	}
}
