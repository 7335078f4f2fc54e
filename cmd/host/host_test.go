package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
)

// hostBin is the host binary built once for the subprocess tests.
var hostBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plba-host-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hostBin = filepath.Join(dir, "host")
	build := exec.Command("go", "build", "-o", hostBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build host:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a finished host process left behind.
type result struct {
	code           int
	stdout, stderr string
}

// runHostCmd runs the host binary to completion with args and extra
// environment, in dir (a temp dir when empty).
func runHostCmd(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return runHostCmdIn(t, t.TempDir(), env, args...)
}

// runHostCmdIn is runHostCmd in the working directory dir.
func runHostCmdIn(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, hostBin, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// cleanEnv is the test's environment without PLBA_ variables, so the
// developer's shell cannot change what a test sees.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PLBA_") {
			env = append(env, kv)
		}
	}
	return env
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := runHostCmd(t, nil, "version")
	require.Equal(t, 0, r.code)
	require.Regexp(t, `^host \S+ \(commit \S+, go1\.\d+`, r.stdout)
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{}, {"frobnicate"}, {"run", "--bogus"}, {"config"}, {"config", "explain"}, {"run", "extra-arg"}} {
		r := runHostCmd(t, nil, args...)
		require.Equal(t, 2, r.code, "args %v: %s", args, r.stderr)
		require.Contains(t, r.stderr, "Usage:")
	}
}

// Every class of configuration error exits 2 with a message naming where
// the value came from, the key and the problem.
func TestConfigErrorsExit2(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		file string
		env  []string
		sets []string
		want []string
	}{
		{name: "unknown key", file: "admin:\n  listen: 127.0.0.1:0\n  lisen: x\n", want: []string{"bad.yaml", "admin.lisen", "unknown"}},
		{name: "unknown section", file: "adminn:\n  listen: x\n", want: []string{"bad.yaml", "adminn", "unknown"}},
		{name: "wrong type", file: "health:\n  interval: [1, 2]\n", want: []string{"bad.yaml", "health.interval"}},
		{name: "malformed duration", file: "lifecycle:\n  stop_timeout: 5 parsecs\n", want: []string{"bad.yaml", "lifecycle.stop_timeout"}},
		{name: "invalid value", file: "admin:\n  listen: 127.0.0.1:99999\n", want: []string{"bad.yaml", "admin.listen", "out of range"}},
		{name: "bad yaml", file: "admin:\n  listen: [\n", want: []string{"bad.yaml"}},
		{name: "env var", file: "log:\n  level: info\n", env: []string{"PLBA_LIFECYCLE__START_TIMEOUT=-5s"}, want: []string{"PLBA_LIFECYCLE__START_TIMEOUT", "lifecycle.start_timeout", "must be positive"}},
		{name: "set flag", file: "log:\n  level: info\n", sets: []string{"log.level=loud"}, want: []string{"--set", "log.level"}},
		{name: "unknown app", file: "host:\n  apps: [nope]\n", want: []string{"bad.yaml", "host.apps[0]", `unknown app "nope"`}},
		{name: "telemetry key", file: "log:\n  level: info\n", sets: []string{"telemetry.traces.sampler=bogus"}, want: []string{"--set", "telemetry.traces.sampler:", "is not one of"}},
		{name: "jetstream key", file: "log:\n  level: info\n", sets: []string{"queue.jetstream.replicas=7"}, want: []string{"--set", "queue.jetstream.replicas: 7:", "one replica"}},
		{name: "app twice", file: "host:\n  apps: [mailorder, mailorder]\n", want: []string{"bad.yaml", "host.apps[1]", `app "mailorder" is already listed (apps[0])`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "bad.yaml", tc.file)
			for _, cmd := range [][]string{{"config", "validate"}, {"run"}} {
				args := append(append([]string{}, cmd...), "--config", path)
				for _, s := range tc.sets {
					args = append(args, "--set", s)
				}
				r := runHostCmd(t, tc.env, args...)
				require.Equal(t, 2, r.code, "%v: %s", cmd, r.stderr)
				for _, w := range tc.want {
					require.Contains(t, r.stderr, w, "%v", cmd)
				}
				require.NotContains(t, r.stderr, "goroutine ", "no stack trace")
			}
		})
	}
}

func TestConfigMissingFileExit2(t *testing.T) {
	t.Parallel()
	r := runHostCmd(t, nil, "config", "validate", "--config", "/nonexistent/plba.yaml")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "/nonexistent/plba.yaml")
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "bad.yaml", "admin:\n  listen: nope\nlifecycle:\n  stop_timeout: -1s\nbogus: 1\n")
	r := runHostCmd(t, nil, "config", "validate", "--config", path)
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "admin.listen")
	require.Contains(t, r.stderr, "lifecycle.stop_timeout")
	require.Contains(t, r.stderr, "bogus")
}

func TestConfigShowRedactsAndLayers(t *testing.T) {
	t.Parallel()
	a := writeFile(t, "a.yaml", "admin:\n  listen: 127.0.0.1:1111\nlog:\n  level: debug\n")
	b := writeFile(t, "b.yaml", "admin:\n  listen: 127.0.0.1:2222\n")
	r := runHostCmd(t, []string{"PLBA_LOG__LEVEL=warn"}, "config", "show", "--config", a, "--config", b, "--set", "lifecycle.stop_timeout=7s")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "listen: 127.0.0.1:2222")
	require.Contains(t, r.stdout, "level: warn")
	require.Contains(t, r.stdout, "stop_timeout: 7s")

	ok := runHostCmd(t, nil, "config", "validate", "--config", a)
	require.Equal(t, 0, ok.code, ok.stderr)
	require.Contains(t, ok.stdout, "configuration valid")
}

func TestEmbeddedDemoConfigIsValid(t *testing.T) {
	t.Parallel()
	r := runHostCmd(t, nil, "config", "validate")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "(embedded) configs/demo.yaml")
	// The file on disk is the same configuration.
	r = runHostCmd(t, nil, "config", "validate", "--config", demoPath(t))
	require.Equal(t, 0, r.code, r.stderr)
}

// TestValidateTouchesNothing: `config validate` checks the configuration
// and the graph without opening what the host would open on start: in the
// demo configuration no ./data appears (no SQLite file, no JetStream
// store), and an order store on a PostgreSQL server that does not answer
// is a valid configuration (the database is the run's business).
func TestValidateTouchesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := runHostCmdIn(t, dir, nil, "config", "validate")
	require.Equal(t, 0, r.code, r.stderr)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "validate left files behind")

	// A port nobody listens on: connecting would fail at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := l.Addr().String()
	require.NoError(t, l.Close())
	sets := []string{"--set", "mailorder.store.driver=postgres", "--set", "mailorder.store.postgres.url=postgres://plba@" + dead + "/none"}
	r = runHostCmdIn(t, dir, nil, append([]string{"config", "validate"}, sets...)...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "configuration valid")
}

// proc is a running host subprocess whose stderr is scanned for JSON log
// lines.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	admin  chan string
	exited chan struct{}
	code   int
}

func startHost(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startHostEnvOut(t, env, io.Discard, args...)
}

// startHostOut is startHost with the host's stdout going to stdout (read
// it only after the process exited).
func startHostOut(t *testing.T, stdout io.Writer, args ...string) *proc {
	t.Helper()
	return startHostEnvOut(t, nil, stdout, args...)
}

func startHostEnvOut(t *testing.T, env []string, stdout io.Writer, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(hostBin, append([]string{"run"}, args...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(cleanEnv(), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = stdout
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, admin: make(chan string, 1), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "admin server listening" {
				select {
				case p.admin <- rec.Addr:
				default:
				}
			}
		}
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			p.code = ee.ExitCode()
		}
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

func (p *proc) adminAddr(t *testing.T) string {
	t.Helper()
	select {
	case a := <-p.admin:
		return a
	case <-p.exited:
		t.Fatalf("host exited early (%d): %s", p.code, p.output())
	case <-time.After(30 * time.Second):
		t.Fatalf("host did not start: %s", p.output())
	}
	return ""
}

// ready waits until the host answers /readyz with 200: it has started
// every component, so a signal now stops it instead of abandoning its
// start (exit 1).
func (p *proc) ready(t *testing.T) {
	t.Helper()
	addr := p.adminAddr(t)
	require.Eventually(t, func() bool { c, _ := httpGet(t, "http://"+addr+"/readyz"); return c == 200 },
		30*time.Second, 20*time.Millisecond, "host not ready: %s", p.output())
}

func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(d):
		t.Fatalf("host did not exit within %s: %s", d, p.output())
	}
	return -1
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var jsonLogs = []string{"--set", "log.format=json", "--set", "admin.listen=127.0.0.1:0"}

func TestSIGTERMStopsCleanly(t *testing.T) {
	t.Parallel()
	p := startHost(t, nil, append(jsonLogs, "--set", "lifecycle.stop_timeout=5s", "--set", "admin.auth.demo=false")...)
	addr := p.adminAddr(t)
	require.Eventually(t, func() bool {
		code, _ := httpGet(t, "http://"+addr+"/readyz")
		return code == 200
	}, 10*time.Second, 20*time.Millisecond)
	code, body := httpGet(t, "http://"+addr+"/admin/v1/status")
	require.Equal(t, 200, code)
	var st struct {
		Version      string `json:"version"`
		ConfigDigest string `json:"config_digest"`
		Components   []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	require.NotEmpty(t, st.ConfigDigest)
	require.NotEmpty(t, st.Version)
	require.NotEmpty(t, st.Components)
	for _, c := range st.Components {
		require.Equal(t, "running", c.State, c.Name)
	}

	start := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.wait(t, 10*time.Second), p.output())
	require.Less(t, time.Since(start), 5*time.Second)
}

func TestShutdownDelayTurnsReadinessOffFirst(t *testing.T) {
	t.Parallel()
	p := startHost(t, nil, append(jsonLogs, "--set", "lifecycle.shutdown_delay=1500ms")...)
	addr := p.adminAddr(t)
	require.Eventually(t, func() bool { c, _ := httpGet(t, "http://"+addr+"/readyz"); return c == 200 }, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Eventually(t, func() bool { c, _ := httpGet(t, "http://"+addr+"/readyz"); return c == 503 }, time.Second, 10*time.Millisecond)
	c, _ := httpGet(t, "http://"+addr+"/livez")
	require.Equal(t, 200, c, "still alive while draining")
	require.Equal(t, 0, p.wait(t, 10*time.Second))
}

func TestSecondSignalForcesExit(t *testing.T) {
	t.Parallel()
	p := startHost(t, nil, append(jsonLogs, "--set", "lifecycle.shutdown_delay=30s")...)
	addr := p.adminAddr(t)
	// Started, not starting: a signal during start abandons the start.
	require.Eventually(t, func() bool { c, _ := httpGet(t, "http://"+addr+"/readyz"); return c == 200 }, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT), "the host ended before the second signal:\n%s", p.output())
	require.Equal(t, 1, p.wait(t, 5*time.Second))
	require.Contains(t, p.output(), "second signal")
}

func TestStartTimeoutExit1(t *testing.T) {
	t.Parallel()
	r := runHostCmd(t, nil, "run", "--set", "admin.listen=127.0.0.1:0", "--set", "lifecycle.start_timeout=1ns")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "start timed out after 1ns")
	require.NotContains(t, r.stderr, "goroutine ")
}

func TestStartFailureExit1(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	r := runHostCmd(t, nil, "run", "--set", "admin.listen="+ln.Addr().String())
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "start failed")
	require.Contains(t, r.stderr, ln.Addr().String())
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	require.Contains(t, lines[len(lines)-1], "host: start failed", "the error is one readable line")
}

// demoPath is the absolute path of configs/demo.yaml (the host subprocess
// runs in a temp dir).
func demoPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "configs", "demo.yaml"))
	require.NoError(t, err)
	return p
}

// TestSignalDuringStartAbandonsIt: a SIGTERM while a component is still
// starting (here: a NATS server that accepts the connection and never
// answers) abandons the start at once instead of waiting for the start
// timeout; the start failed, so the host exits 1.
func TestSignalDuringStartAbandonsIt(t *testing.T) {
	t.Parallel()
	addr, accepted := netfault.Silent(t) // a server that never speaks
	p := startHost(t, nil, append(jsonLogs, "--set", "queue.backend=jetstream",
		"--set", "queue.jetstream.url=nats://"+addr, "--set", "queue.jetstream.connect_timeout=60s",
		"--set", "lifecycle.start_timeout=60s")...)
	select {
	case <-accepted: // the host is inside the JetStream connect
	case <-p.exited:
		t.Fatalf("host exited early (%d): %s", p.code, p.output())
	case <-time.After(30 * time.Second):
		t.Fatalf("the host never connected: %s", p.output())
	}
	start := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 1, p.wait(t, 20*time.Second), p.output())
	require.Less(t, time.Since(start), 10*time.Second)
	require.Contains(t, p.output(), "received while starting: start abandoned")
	require.NotContains(t, p.output(), `"logger":"fx"`, "fx's own failure events stay at debug")
}

// TestSecretFileIsReadWithALimit: a secret file naming an endless device
// or a runaway file fails with a message, also with the embedded
// configuration.
func TestSecretFileIsReadWithALimit(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	r := runHostCmd(t, nil, "config", "validate", "--set", "queue.jetstream.password_file=/dev/zero")
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, "/dev/zero is a device, not a regular file")

	big := filepath.Join(t.TempDir(), "big")
	require.NoError(t, os.WriteFile(big, nil, 0o600))
	require.NoError(t, os.Truncate(big, 17<<20)) // sparse
	r = runHostCmd(t, nil, "config", "validate", "--set", "queue.jetstream.password_file="+big)
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, "larger than 16 MiB")
}
