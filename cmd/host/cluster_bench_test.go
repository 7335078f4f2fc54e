package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkClusterLoadgen measures loadgen on the three-node NATS cluster
// (PLBA_TEST_CLUSTER=1) with 1, 2 and 3 host processes, on R1 and R3
// streams: tasks/s from the first handled task to the last, and the CPU
// the hosts and the NATS servers spent per task. Host 1 enqueues
// clusterBenchTasks keyed tasks (no work in the handler); every host
// handles them. One run per iteration (-benchtime 1x):
//
//	PLBA_TEST_CLUSTER=1 go test ./cmd/host -run '^$' -bench ClusterLoadgen -benchtime 1x
func BenchmarkClusterLoadgen(b *testing.B) {
	if os.Getenv("PLBA_TEST_CLUSTER") == "" {
		b.Skip("set PLBA_TEST_CLUSTER=1 to run three nats-server and up to three host processes")
	}
	nodes := startNATSCluster(b, 3)
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.url()
	}
	runs := 0
	for _, replicas := range []int{1, 3} {
		for hosts := 1; hosts <= 3; hosts++ {
			b.Run(fmt.Sprintf("R%d/hosts=%d", replicas, hosts), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					runs++ // the benchmark function may run more than once: new streams each time
					r := runClusterLoadgen(b, urls, nodes, replicas, hosts, fmt.Sprintf("B%dR%dH%d", runs, replicas, hosts))
					b.ReportMetric(r.tasksPerSec, "tasks/s")
					b.ReportMetric(r.hostCPU, "host-cpu-µs/task")
					b.ReportMetric(r.natsCPU, "nats-cpu-µs/task")
				}
			})
		}
	}
}

const clusterBenchTasks = 20000

type clusterBenchResult struct {
	tasksPerSec, hostCPU, natsCPU float64
}

func runClusterLoadgen(b *testing.B, urls []string, nodes []*natsNode, replicas, hosts int, prefix string) clusterBenchResult {
	b.Helper()
	dir := b.TempDir()
	var cmds []*exec.Cmd
	var outs []*syncBuf
	var recs []string
	for h := 0; h < hosts; h++ {
		count := 0
		if h == 0 {
			count = clusterBenchTasks
		}
		rec := filepath.Join(dir, fmt.Sprintf("h%d.txt", h))
		recs = append(recs, rec)
		cfg := filepath.Join(dir, fmt.Sprintf("h%d.yaml", h))
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`host:
  apps: [loadgen]
log: {level: warn, format: json}
admin: {listen: 127.0.0.1:0}
lifecycle: {start_timeout: 60s}
telemetry: {traces: {exporter: none}}
queue:
  backend: jetstream
  jetstream:
    urls: [%s]
    replicas: %d
    stream_prefix: %s
    dead: {max_bytes: 16777216}   # each run has its own streams: keep the servers' reservations small
workers:
  loadgen: {concurrency: 8}
loadgen:
  count: %d
  batch: 500
  record_file: %s
`, strings.Join(urls, ", "), replicas, prefix, count, rec)), 0o600); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(hostBin, "run", "--config", cfg)
		cmd.Env = cleanEnv()
		out := &syncBuf{}
		outs = append(outs, out)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, cmd)
		defer func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}()
	}
	lines := func() int {
		n := 0
		for _, r := range recs {
			if b, err := os.ReadFile(r); err == nil {
				n += bytes.Count(b, []byte{'\n'})
			}
		}
		return n
	}
	cpu := func() (host, nats time.Duration) {
		for _, c := range cmds {
			host += procCPU(c.Process.Pid)
		}
		for _, n := range nodes {
			nats += procCPU(n.cmd.Process.Pid)
		}
		return host, nats
	}
	deadline := time.Now().Add(2 * time.Minute)
	for lines() == 0 {
		if time.Now().After(deadline) {
			b.Fatalf("no task handled within 2 minutes; host 1: %s", outs[0].String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	began := time.Now()
	h0, n0 := cpu()
	for lines() < clusterBenchTasks {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d tasks handled within 2 minutes", lines(), clusterBenchTasks)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(began)
	h1, n1 := cpu()
	return clusterBenchResult{
		tasksPerSec: clusterBenchTasks / took.Seconds(),
		hostCPU:     float64((h1 - h0).Microseconds()) / clusterBenchTasks,
		natsCPU:     float64((n1 - n0).Microseconds()) / clusterBenchTasks,
	}
}

// procCPU is the user and system CPU time pid has used (from /proc).
func procCPU(pid int) time.Duration {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0
	}
	line := sc.Text()
	// Fields after the command name (which may hold spaces) in parentheses.
	rest := line[strings.LastIndexByte(line, ')')+2:]
	fs := strings.Fields(rest)
	if len(fs) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fs[11], 10, 64)
	stime, _ := strconv.ParseInt(fs[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}

// syncBuf is a bytes.Buffer for a subprocess's output, safe to read
// while it writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
