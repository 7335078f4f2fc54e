package main

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The binary's command line: help exits 0 and documents the flags; a typo
// gets a suggestion and exit status 2.
func TestCLIHelpAndSuggestions(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"run", "--help"}, {"config", "--help"}} {
		r := runHostCmd(t, nil, args...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "--config FILE")
		require.Contains(t, r.stdout, "--set key=value")
	}
	r := runHostCmd(t, nil, "--version")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `^host \S+ \(commit \S+, go1\.\d+`, r.stdout)

	r = runHostCmd(t, nil, "rn", "--config", "x.yaml")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "Did you mean this?\n\trun")
}

// Without --config the first log line says the host runs the built-in
// demo configuration.
func TestRunWithoutConfigNamesTheDemo(t *testing.T) {
	t.Parallel()
	p := startHost(t, nil, "--set", "log.format=json", "--set", "admin.listen=127.0.0.1:0", "--set", "queue.backend=memory")
	addr := p.adminAddr(t)
	// Started, not starting: a signal during start abandons the start.
	require.Eventually(t, func() bool { c, _ := httpGet(t, "http://"+addr+"/readyz"); return c == 200 }, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.wait(t, 30*time.Second), p.output())
	first := strings.SplitN(p.output(), "\n", 2)[0]
	var rec struct {
		Msg  string   `json:"msg"`
		Apps []string `json:"apps"`
	}
	require.NoError(t, json.Unmarshal([]byte(first), &rec), first)
	require.Equal(t, "host starting with the built-in demo configuration (embedded) configs/demo.yaml (no --config given)", rec.Msg)
	require.Equal(t, []string{"mailorder"}, rec.Apps)
	require.NotContains(t, p.output(), "queue.jetstream is set", "the demo's own JetStream section warned of")
}

// A queue.jetstream section someone set while queue.backend is memory is
// warned of right after the announcement, naming where it was set: its
// settings are not used (before: not a word, and a host meant for
// JetStream whose backend key was forgotten kept its tasks in memory).
func TestJetStreamSettingsWithTheMemoryBackendAreWarnedOf(t *testing.T) {
	t.Parallel()
	cfg := writeFile(t, "c.yaml", "host:\n  apps: []\nqueue:\n  jetstream:\n    urls: [nats://127.0.0.1:4222]\n")
	r := runHostCmd(t, nil, "config", "validate", "--config", cfg)
	require.Equal(t, 0, r.code, "valid: %s", r.stderr)
	p := startHost(t, nil, "--config", cfg, "--set", "log.format=json", "--set", "admin.listen=127.0.0.1:0")
	addr := p.adminAddr(t)
	require.Eventually(t, func() bool { c, _ := httpGet(t, "http://"+addr+"/readyz"); return c == 200 }, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.wait(t, 30*time.Second), p.output())
	lines := strings.SplitN(p.output(), "\n", 3)
	require.Len(t, lines, 3, p.output())
	var rec struct {
		Level  string `json:"level"`
		Msg    string `json:"msg"`
		Source string `json:"source"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &rec), lines[1])
	require.Equal(t, "warn", rec.Level, lines[1])
	require.Contains(t, rec.Msg, "queue.jetstream is set but queue.backend is memory: its settings are not used", lines[1])
	require.Equal(t, cfg, rec.Source)
}
