package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkStartToReady measures, per run of the host binary, the time from
// exec to the first 200 from /readyz and the resident set size right then
// (all of it, and the anonymous part: heap and stacks, without the
// binary's mapped pages). It reports the medians. "demo" is
// configs/demo.yaml as `make run` starts it (embedded JetStream, the
// mailorder app with its IMAP server and SQLite store, all created fresh in
// a temp dir); "platform" is the platform alone on the memory backend.
func BenchmarkStartToReady(b *testing.B) {
	wd, _ := os.Getwd()
	demo := wd + "/../../configs/demo.yaml"
	// The platform alone: the demo without its mailorder section (the
	// last one), which a host without the app refuses as set but unused.
	b2, err := os.ReadFile(demo)
	if err != nil {
		b.Fatal(err)
	}
	head, _, ok := strings.Cut(string(b2), "\nmailorder:")
	if !ok {
		b.Fatal("configs/demo.yaml has no mailorder section")
	}
	platformCfg := filepath.Join(b.TempDir(), "platform.yaml")
	if err := os.WriteFile(platformCfg, []byte(head+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		args []string
	}{
		{"demo", []string{"--config", demo}},
		{"demo-memory-queue", []string{"--config", demo, "--set", "queue.backend=memory"}},
		{"platform-jetstream", []string{"--config", platformCfg, "--set", "host.apps=[]"}},
		{"platform", []string{"--config", platformCfg, "--set", "host.apps=[]", "--set", "queue.backend=memory"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var readyMs, rssMiB, anonMiB []float64
			for i := 0; i < b.N; i++ {
				ms, rss, anon := startOnce(b, bc.args...)
				readyMs = append(readyMs, ms)
				rssMiB = append(rssMiB, rss)
				anonMiB = append(anonMiB, anon)
			}
			b.ReportMetric(median(readyMs), "ms-to-ready")
			b.ReportMetric(median(rssMiB), "MiB-rss")
			b.ReportMetric(median(anonMiB), "MiB-rss-anon")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func startOnce(b *testing.B, args ...string) (float64, float64, float64) {
	b.Helper()
	dir := b.TempDir()
	cmd := exec.Command(hostBin, append(append([]string{"run"}, args...),
		"--set", "admin.listen=127.0.0.1:0", "--set", "log.format=json", "--set", "log.level=info")...)
	cmd.Env = cleanEnv()
	cmd.Dir = dir // the demo's relative data paths land in the temp dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "admin server listening" {
				addr <- rec.Addr
			}
		}
	}()
	var a string
	select {
	case a = <-addr:
	case <-time.After(30 * time.Second):
		b.Fatal("host did not start")
	}
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + a + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Since(start) > 30*time.Second {
			b.Fatal("host not ready within 30s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	ready := time.Since(start)
	return float64(ready.Microseconds()) / 1000, statusMiB(cmd.Process.Pid, "VmRSS:"), statusMiB(cmd.Process.Pid, "RssAnon:")
}

// statusMiB reads a kB field (VmRSS:, RssAnon:) of pid's /proc status, in
// MiB.
func statusMiB(pid int, field string) float64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
