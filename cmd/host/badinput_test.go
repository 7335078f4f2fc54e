package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSecretFileFIFOIsRefused: a FIFO named as a password file (nobody
// writes to it: reading would block for ever) is a configuration error at
// once, naming the key and what the file is, for validate and run, with
// the embedded configuration and with a file.
func TestSecretFileFIFOIsRefused(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "password")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO: %v", err)
	}
	file := writeFile(t, "c.yaml", "admin:\n  listen: 127.0.0.1:0\n")
	for _, args := range [][]string{
		{"config", "validate"},
		{"config", "validate", "--config", file},
		{"run", "--config", file},
	} {
		args = append(args, "--set", "queue.jetstream.password_file="+fifo)
		r := runHostCmd(t, nil, args...) // bounded: runHostCmd kills after a minute
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		require.Contains(t, r.stderr, "queue.jetstream.password_file: cannot read secret file: "+fifo+" is a named pipe (FIFO), not a regular file", "%v", args)
		require.NotContains(t, r.stderr, "goroutine ")
	}
}

// TestValidateCreatesNoRecordFile: `config validate` of a loadgen host
// with a record file builds the graph and writes nothing.
func TestValidateCreatesNoRecordFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rec := filepath.Join(dir, "handled.txt")
	file := writeFile(t, "c.yaml", "host:\n  apps: [loadgen]\nqueue:\n  backend: memory\nloadgen:\n  record_file: "+rec+"\n")
	r := runHostCmdIn(t, dir, nil, "config", "validate", "--config", file)
	require.Equal(t, 0, r.code, r.stderr)
	require.True(t, strings.HasPrefix(r.stdout, "configuration valid"), r.stdout)
	_, err := os.Stat(rec)
	require.ErrorIs(t, err, os.ErrNotExist, "validate created the record file")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "validate left files behind")
}

// TestGateReadinessNamesASource: sources.gate_readiness must name sources
// the host runs; a typo is a configuration error naming the key and the
// known sources (validate and run).
func TestGateReadinessNamesASource(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"validate", "run"} {
		args := []string{"config", "validate"}
		if cmd == "run" {
			args = []string{"run"}
		}
		args = append(args, "--set", "admin.listen=127.0.0.1:0", "--set", "queue.backend=memory",
			"--set", "host.apps=loadgen", "--set", "sources.gate_readiness=loadgn")
		r := runHostCmd(t, nil, args...)
		require.Equal(t, 2, r.code, "%s: %s", cmd, r.stderr)
		require.Contains(t, r.stderr, `sources.gate_readiness[0]: no source "loadgn" (known: loadgen)`, cmd)
	}
	r := runHostCmd(t, nil, "config", "validate", "--set", "host.apps=loadgen", "--set", "sources.gate_readiness=loadgen")
	require.Equal(t, 0, r.code, r.stderr)
}
