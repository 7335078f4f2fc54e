package mailorder_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/sample"
	"github.com/plba/plba/apps/mailorder/store/sqlite"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
)

var (
	hostOnce sync.Once
	hostBin  string
	hostErr  error
	hostDir  string
)

// hostBinary builds ./cmd/host once per test binary, into a temporary
// directory that TestMain removes (cleanupHost).
func hostBinary(t *testing.T) string {
	t.Helper()
	hostOnce.Do(func() {
		hostDir, hostErr = os.MkdirTemp("", "mailorder-host-")
		if hostErr != nil {
			return
		}
		hostBin = filepath.Join(hostDir, "host")
		cmd := exec.Command("go", "build", "-o", hostBin, "./cmd/host")
		cmd.Dir = filepath.Join("..", "..")
		out, err := cmd.CombinedOutput()
		if err != nil {
			hostErr = fmt.Errorf("build host: %w\n%s", err, out)
		}
	})
	require.NoError(t, hostErr)
	return hostBin
}

func cleanupHost() {
	if hostDir != "" {
		_ = os.RemoveAll(hostDir)
	}
}

// syncBuffer is a bytes.Buffer safe for the subprocess's writers and the
// test's readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	code int
}

// runHost starts the host binary with config file cfg; it is killed when
// the test ends if still running.
func runHost(t *testing.T, cfg string) *proc {
	t.Helper()
	p := &proc{out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(hostBinary(t), "run", "--config", cfg)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(t, p.cmd.Start())
	go func() {
		defer close(p.done)
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(within):
		t.Fatalf("host did not exit within %s; output:\n%s", within, p.out.String())
		return -1
	}
}

// The host is SIGKILLed while it works through a mailbox of order mails,
// then restarted on the same durable queue and order database: in the end
// every valid mail has exactly its orders (none twice), every mail has
// left the INBOX (Processed or Failed), and nothing is left queued.
func TestCrashMidwayNoDuplicateNoLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the host binary")
	}
	t.Parallel()
	const n = 600
	srv := imaptest.NewServer(t, memserver.Options{})
	for i := 0; i < n; i++ {
		_, err := srv.Append("INBOX", sample.Mail(i))
		require.NoError(t, err)
	}
	want := sample.Count(n)
	dir := t.TempDir()
	db := filepath.Join(dir, "data", "orders.db")
	cfg := filepath.Join(dir, "host.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`host:
  apps: [mailorder]
log:
  format: json
  level: warn
admin:
  listen: 127.0.0.1:0
queue:
  backend: jetstream
  jetstream:
    ack_wait: 3s
    embedded:
      store_dir: %s
workers:
  mailorder:
    concurrency: 2
    drain_timeout: 1s
mailorder:
  mailbox:
    host: %s
    port: %d
    tls: none
    username: %s
    password: %s
    batch_size: 20
    reconnect: {initial: 100ms, max: 1s}
  store:
    sqlite:
      path: %s
`, filepath.Join(dir, "nats"), srv.Host(), srv.Port(), imaptest.Username, imaptest.Password, db)), 0o600))

	settled := func() int { return len(folder(t, srv, "Processed")) + len(folder(t, srv, "Failed")) }

	p := runHost(t, cfg)
	require.Eventually(t, func() bool { return settled() >= n/10 }, 60*time.Second, 2*time.Millisecond,
		"the first host settles mails: %s", p.out.String())
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	p.wait(t, 10*time.Second)
	before := settled()
	t.Logf("killed after %d of %d mails were settled", before, n)
	require.Less(t, before, n, "the kill must land midway for the test to mean anything")

	p2 := runHost(t, cfg)
	require.Eventually(t, func() bool { return settled() == n }, 120*time.Second, 20*time.Millisecond,
		"the restarted host settles every mail: %s", p2.out.String())

	// The restarted host idles on the mailbox: a new mail is settled
	// long before the next reconcile pass (the default, a minute) would
	// find it. The bound is not a latency guard: on a loaded CI machine
	// the host subprocess took over 2 s from append to settled.
	time.Sleep(200 * time.Millisecond)
	began := time.Now()
	_, err := srv.Append("INBOX", sample.Mail(n))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return settled() == n+1 }, 15*time.Second, 10*time.Millisecond,
		"a mail appended while the host idles is settled before a reconcile pass")
	t.Logf("append → settled by the host subprocess: %s", time.Since(began))
	want = sample.Count(n + 1)

	require.NoError(t, p2.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p2.wait(t, 30*time.Second), p2.out.String())

	require.Empty(t, folder(t, srv, "INBOX"))
	require.Len(t, folder(t, srv, "Processed"), want.Valid)
	require.Len(t, folder(t, srv, "Failed"), want.Invalid)

	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: db})
	require.NoError(t, err)
	defer s.Close()
	orders, err := s.List(ctx, 10*n)
	require.NoError(t, err)
	require.Len(t, orders, want.Orders, "every valid mail's orders, none twice")
	perMail := map[string]int{}
	for _, o := range orders {
		perMail[o.MessageID]++
	}
	for i := 0; i <= n; i++ {
		require.Equal(t, sample.VariantOf(i).Orders(), perMail[sample.MessageID(i)], "mail %d", i)
	}
	pending, err := s.PendingConfirmations(ctx, 10*n)
	require.NoError(t, err)
	require.Len(t, pending, want.Orders, "one confirmation per order")
}
