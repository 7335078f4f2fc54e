package imap_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeEmitter records what the source emits. When gate is set, Emit blocks
// until the gate is closed (back-pressure from a full queue).
type fakeEmitter struct {
	mu      sync.Mutex
	tasks   []*task.Task
	batches []int
	calls   int
	gate    chan struct{}
	fail    error
}

func (e *fakeEmitter) Emit(ctx context.Context, tasks ...*task.Task) error {
	e.mu.Lock()
	e.calls++
	gate, fail := e.gate, e.fail
	e.mu.Unlock()
	if fail != nil {
		return fail
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range tasks {
		e.tasks = append(e.tasks, t.Clone())
	}
	e.batches = append(e.batches, len(tasks))
	return nil
}

func (e *fakeEmitter) all() []*task.Task {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*task.Task(nil), e.tasks...)
}

func (e *fakeEmitter) count() int { return len(e.all()) }

func (e *fakeEmitter) callCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls
}

// keys counts emitted tasks per key.
func (e *fakeEmitter) keys() map[string]int {
	m := map[string]int{}
	for _, t := range e.all() {
		m[t.Key]++
	}
	return m
}

type bundle struct {
	srv  *memserver.Server
	src  *imap.Source
	em   *fakeEmitter
	done chan error
	stop context.CancelFunc
}

func testConfig(host string, port int) imap.Config {
	return imap.Config{
		Host: host, Port: port, TLS: imap.TLSNone,
		Username: imaptest.Username, Password: imaptest.Password,
		Mode: imap.ModePoll, PollInterval: 50 * time.Millisecond,
		Reconcile: 300 * time.Millisecond,
		Queue:     "mail", Kind: "mail.received",
		Reconnect:   imap.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		RefusalSpan: 100 * time.Millisecond,
		DialTimeout: 2 * time.Second,
	}
}

func newSource(t *testing.T, cfg imap.Config) *imap.Source {
	t.Helper()
	src, err := imap.NewSource(cfg, zaptest.NewLogger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = src.Close() })
	return src
}

// start runs src until the test ends (or stop is called).
func start(t *testing.T, src *imap.Source, em source.Emitter) (done chan error, stop context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan error, 1)
	go func() { done <- src.Run(ctx, em) }()
	var once sync.Once
	var runErr error
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(5 * time.Second):
				runErr = errors.New("Run did not return within 5s of cancel")
			}
		})
	}
	t.Cleanup(func() {
		stop()
		require.NoError(t, runErr)
	})
	return done, stop
}

func setup(t *testing.T, opts memserver.Options, tweak func(*imap.Config)) *bundle {
	t.Helper()
	srv := imaptest.NewServer(t, opts)
	cfg := testConfig(srv.Host(), srv.Port())
	if tweak != nil {
		tweak(&cfg)
	}
	b := &bundle{srv: srv, src: newSource(t, cfg), em: &fakeEmitter{}}
	return b
}

func (b *bundle) run(t *testing.T) {
	t.Helper()
	b.done, b.stop = start(t, b.src, b.em)
}

func appendN(t *testing.T, srv *memserver.Server, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		_, err := srv.Append("INBOX", imaptest.Message(fmt.Sprintf("%d@example.com", i), fmt.Sprintf("order %d", i), "hello"))
		require.NoError(t, err)
	}
}

func messages(t *testing.T, srv *memserver.Server, mailbox string) []memserver.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msgs, err := srv.Messages(ctx, mailbox)
	require.NoError(t, err)
	return msgs
}

func waitEmitted(t *testing.T, em *fakeEmitter, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return em.count() >= n }, 30*time.Second, 5*time.Millisecond,
		"want %d emitted", n)
}

// taskKey is the key the source gives a message: its Message-ID and the
// SHA-256 of its bytes.
func taskKey(mailbox, msgID string, raw []byte) string {
	sum := sha256.Sum256(raw)
	return "imap:" + mailbox + ":" + msgID + ":sha256:" + hex.EncodeToString(sum[:])
}

func complete(t *testing.T, src *imap.Source, tk *task.Task, o task.Outcome) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, src.Complete(ctx, tk, o, "test"))
	require.NoError(t, src.WaitCompletions(ctx))
}

// lastLostError is the error of the last "connection lost" log entry.
func lastLostError(logs *observer.ObservedLogs) string {
	lost := logs.FilterMessage("imap connection lost, reconnecting").All()
	if len(lost) == 0 {
		return ""
	}
	return fmt.Sprint(lost[len(lost)-1].ContextMap()["error"])
}

// lostErrors are the errors of the "connection lost" log entries that
// contain part.
func lostErrors(logs *observer.ObservedLogs, part string) []string {
	var out []string
	for _, e := range logs.FilterMessage("imap connection lost, reconnecting").All() {
		if msg := fmt.Sprint(e.ContextMap()["error"]); strings.Contains(msg, part) {
			out = append(out, msg)
		}
	}
	return out
}

func waitCompletions(t *testing.T, src *imap.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, src.WaitCompletions(ctx))
}
