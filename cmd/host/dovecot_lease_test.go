package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/sample"
	"github.com/plba/plba/internal/netfault"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// Two hosts, one real Dovecot mailbox (PLBA_TEST_DOVECOT=1, with
// PLBA_TEST_POSTGRES_URL for the shared order store): both host processes
// run mailorder on one JetStream (a NATS server this test runs on
// loopback, each host reaching it through a proxy of its own) and contend
// for the mailbox's lease. Mail arrives while both run, over IMAP APPEND
// and as a delivery agent would (doveadm save). Throughout, at most one
// host watches the mailbox: as both hosts' admin status says (holding the
// lease or connected) and as Dovecot says (its sessions in IDLE).
//
// The watching host is killed with SIGKILL midway; the other takes the
// mailbox over within the lease's bound (6 s TTL: 8 s, asserted under
// 10 s). The killed host is started again and waits. Then the watching
// host is cut off from NATS (its proxy forwards nothing and keeps the
// connection open): it stops watching before the other takes over, within
// the same bound, and waits once the partition heals. In the end every
// mail left the INBOX and every valid mail's orders are stored exactly
// once.
func TestOneHostWatchesADovecotMailbox(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs Dovecot, a NATS server and two host processes")
	}
	pgURL := os.Getenv("PLBA_TEST_POSTGRES_URL")
	if pgURL == "" {
		t.Skip("the two hosts share their orders in PostgreSQL: set PLBA_TEST_POSTGRES_URL")
	}
	d := dovecottest.Start(t) // skips without PLBA_TEST_DOVECOT=1
	const (
		first = 400 // delivered around the kill
		mails = 600 // the rest around the partition
		batch = 20
	)
	schema := fmt.Sprintf("dovelease_%d", time.Now().UnixNano())
	t.Cleanup(func() { dropSchema(pgURL, schema) })
	natsAddr := strings.TrimPrefix(startTestNATS(t), "nats://")

	hosts := make([]*leaseHost, 2)
	for i := range hosts {
		h := &leaseHost{name: fmt.Sprintf("host-%d", i+1), nats: netfault.NewProxy(t, natsAddr)}
		h.cfg = writeFile(t, h.name+".yaml", fmt.Sprintf(`host:
  apps: [mailorder]
log:
  format: json
  level: info
lifecycle:
  start_timeout: 60s
admin:
  listen: 127.0.0.1:0
queue:
  backend: jetstream
  jetstream:
    urls: [nats://%s]
    ack_wait: 5s
sources:
  lease:
    holder: %s
workers:
  mailorder: {concurrency: 2, drain_timeout: 1s}
mailorder:
  mailbox:
    host: %s
    port: %d
    tls: none
    username: %s
    password: %s
    mode: idle
    batch_size: 20
    reconcile: 5s
    reconnect: {initial: 100ms, max: 1s}
  store:
    driver: postgres
    postgres: {url: %q, schema: %s}
`, h.nats.Addr(), h.name, d.Host(), d.Port(), dovecottest.Username, dovecottest.Password, pgURL, schema))
		hosts[i] = h
	}
	for _, h := range hosts {
		h.start(t)
	}
	// One of them takes the mailbox.
	require.Eventually(t, func() bool { return watcher(hosts) != nil }, 30*time.Second, 20*time.Millisecond,
		"one host takes the mailbox: %s", hosts[0].output())

	// From now on, both hosts and Dovecot are watched.
	mon := watchOneWatcher(t, d, hosts)
	settled := func() int {
		p, err := d.Count("Processed")
		require.NoError(t, err)
		f, err := d.Count("Failed")
		require.NoError(t, err)
		return p + f
	}
	other := func(h *leaseHost) *leaseHost {
		if h == hosts[0] {
			return hosts[1]
		}
		return hosts[0]
	}

	// 1. Mail arrives while both run; the holder is killed midway: enough
	// mail delivered, some settled, not all.
	dl := deliver(t, d, 0, first, batch)
	require.Eventually(t, func() bool { return dl.reached(t, first*2/5) && settled() > 0 }, 60*time.Second, 10*time.Millisecond,
		"mail is delivered and settled: %s", hosts[0].output())
	mon.check(t)
	killed := watcher(hosts)
	require.NotNil(t, killed, "one host holds the mailbox")
	next := other(killed)
	atKill, sentAtKill := settled(), dl.sent.Load()
	killedAt := time.Now()
	killed.kill(t)
	require.Eventually(t, func() bool { return next.status().Lease.Held }, 20*time.Second, 20*time.Millisecond,
		"%s takes the mailbox over: %s", next.name, next.output())
	handOver := time.Since(killedAt)
	t.Logf("%s killed after %d mails delivered and %d settled; %s took the mailbox over after %v",
		killed.name, sentAtKill, atKill, next.name, handOver.Round(time.Millisecond))
	require.Less(t, handOver, 10*time.Second, "the lease hands over within its bound")
	require.Less(t, atKill, first, "the kill must land midway for the test to mean anything")
	require.EqualValues(t, 1, next.status().Lease.HandOvers, "the new holder counts the hand-over")
	dl.wait(t)

	// The killed host starts again and waits for the mailbox.
	killed.start(t)
	require.Eventually(t, func() bool {
		st := killed.status()
		return st.Lease.Holder == next.name && !st.Lease.Held && st.Source.Standby
	}, 30*time.Second, 20*time.Millisecond, "%s waits for the mailbox: %s", killed.name, killed.output())

	// 2. More mail; the holder is cut off from NATS midway.
	cutOff, taker := next, killed
	dl = deliver(t, d, first, mails, batch)
	require.Eventually(t, func() bool { return dl.reached(t, (mails-first)/3) }, 60*time.Second, 10*time.Millisecond,
		"mail is delivered")
	mon.check(t)
	cutAt := time.Now()
	cutOff.nats.Freeze()
	require.Eventually(t, func() bool { return taker.status().Lease.Held }, 20*time.Second, 20*time.Millisecond,
		"%s takes the mailbox over: %s", taker.name, taker.output())
	handOver = time.Since(cutAt)
	// Once the new holder idles, the sampler looks at both twice more.
	require.Eventually(t, func() bool { return taker.status().Source.Connected }, 20*time.Second, 20*time.Millisecond,
		"%s connects to the mailbox: %s", taker.name, taker.output())
	mon.twoMoreRounds(t)
	mon.check(t)
	st := cutOff.status()
	t.Logf("%s cut off from NATS; %s took the mailbox over after %v; the cut-off host's lease: %+v",
		cutOff.name, taker.name, handOver.Round(time.Millisecond), st.Lease)
	require.Less(t, handOver, 10*time.Second, "the lease hands over within its bound")
	require.EqualValues(t, 1, st.Losses, "the cut-off host lost its hold")
	require.False(t, st.Lease.Held)
	require.False(t, st.Source.Connected, "the cut-off host's IMAP session ended")
	cutOff.nats.Thaw()
	require.Eventually(t, func() bool {
		st := cutOff.status()
		return st.Lease.Holder == taker.name && !st.Lease.Held && st.Source.Standby
	}, 30*time.Second, 20*time.Millisecond, "once the partition heals, %s waits for the mailbox: %s", cutOff.name, cutOff.output())
	dl.wait(t)

	require.Eventually(t, func() bool { return settled() == mails }, 60*time.Second, 50*time.Millisecond,
		"every mail settled: %s", taker.output())
	require.Eventually(t, func() bool { return taker.status().Source.InFlight == 0 }, 30*time.Second, 50*time.Millisecond,
		"the holder has nothing in flight")
	report := mon.stop()
	t.Logf("watched %d rounds of both hosts' status (%d with a host not answering) and %d of Dovecot's sessions: most sessions at once %d, most idling %d",
		report.rounds, report.unknown, report.dovecotRounds, report.mostSessions, report.mostIdle)
	mon.check(t)
	require.Equal(t, 1, report.mostIdle, "Dovecot saw the watcher idle: the check saw something")
	for _, h := range hosts {
		require.Positive(t, report.sawWatching[h.name], "%s was seen watching", h.name)
	}

	for _, h := range hosts {
		require.NoError(t, h.process().cmd.Process.Signal(syscall.SIGTERM))
	}
	for _, h := range hosts {
		require.Equal(t, 0, h.process().wait(t, 30*time.Second), "%s stops cleanly: %s", h.name, h.output())
	}

	// Every mail left the INBOX; every valid mail's orders stored once.
	want := sample.Count(mails)
	inbox, err := d.Count("INBOX")
	require.NoError(t, err)
	require.Zero(t, inbox, "every mail left the INBOX")
	processed, err := d.Count("Processed")
	require.NoError(t, err)
	require.Equal(t, want.Valid, processed)
	failed, err := d.Count("Failed")
	require.NoError(t, err)
	require.Equal(t, want.Invalid, failed)
	checkOrdersOnce(t, pgURL, schema, mails)
}

// leaseHost is one host of TestOneHostWatchesADovecotMailbox: its config,
// its proxy to NATS and, while it runs, its process.
type leaseHost struct {
	name, cfg string
	nats      *netfault.Proxy

	mu    sync.Mutex
	p     *proc
	admin string
	alive bool
}

// start runs the host and waits for its admin server.
func (h *leaseHost) start(t *testing.T) {
	t.Helper()
	p := startHost(t, nil, "--config", h.cfg)
	addr := p.adminAddr(t)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.p, h.admin, h.alive = p, addr, true
}

// kill ends the host with SIGKILL and waits for it.
func (h *leaseHost) kill(t *testing.T) {
	t.Helper()
	p := h.process()
	h.mu.Lock()
	h.alive = false
	h.mu.Unlock()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.exited
}

func (h *leaseHost) process() *proc {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.p
}

func (h *leaseHost) output() string { return h.process().output() }

// status reads the mailbox source's status (zero when the host does not
// run or answer).
func (h *leaseHost) status() hostSourceStatus {
	st, _ := h.read()
	return st
}

// read reads the mailbox source's status; ok is false when the host runs
// and did not answer.
func (h *leaseHost) read() (st hostSourceStatus, ok bool) {
	h.mu.Lock()
	addr, alive := h.admin, h.alive
	h.mu.Unlock()
	if !alive {
		return st, true
	}
	resp, err := statusClient.Get("http://" + addr + "/admin/v1/status")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	var all struct {
		Components []struct {
			Name    string `json:"name"`
			Details struct {
				Details hostSourceStatus `json:"details"`
			} `json:"details"`
		} `json:"components"`
	}
	if json.NewDecoder(resp.Body).Decode(&all) != nil {
		return st, false
	}
	for _, c := range all.Components {
		if strings.HasPrefix(c.Name, "source/imap/") {
			return c.Details.Details, true
		}
	}
	return st, false
}

// hostSourceStatus is the mailbox source's status as a host's
// /admin/v1/status shows it: the lease and the IMAP source's own.
type hostSourceStatus struct {
	Lease  leaseStatus `json:"lease"`
	Losses int64       `json:"losses"`
	Source struct {
		Connected bool `json:"connected"`
		Standby   bool `json:"standby"`
		InFlight  int  `json:"in_flight"`
	} `json:"source"`
}

// watching says whether the host watches the mailbox: it holds the lease
// or its IMAP session is connected.
func (s hostSourceStatus) watching() bool {
	return s.Lease.Held || (s.Source.Connected && !s.Source.Standby)
}

var statusClient = &http.Client{Timeout: 5 * time.Second}

// watcher is the one live host holding the mailbox's lease, nil when none
// does.
func watcher(hosts []*leaseHost) *leaseHost {
	for _, h := range hosts {
		if h.status().Lease.Held {
			return h
		}
	}
	return nil
}

// startTestNATS runs a NATS server with JetStream for the test: on
// 127.0.0.1 at a free port, its store in a temporary directory, shut down
// when the test ends. It returns the client URL.
func startTestNATS(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := embedded.Start(ctx, embedded.Config{StoreDir: filepath.Join(t.TempDir(), "nats"), Listen: "127.0.0.1:0"}, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	url := srv.ClientURL()
	require.NotEmpty(t, url)
	return url
}

// delivery delivers sample mails in the background (see deliver).
type delivery struct {
	sent   atomic.Int64 // mails delivered so far, counting from the first
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// deliver delivers sample mails from..to-1 to d's INBOX in batches of b, a
// few milliseconds apart: every fifth batch's first mail with doveadm save
// (as a delivery agent would), the rest with APPEND. It stops when the
// test ends; wait waits for the last batch.
func deliver(t *testing.T, d *dovecottest.Server, from, to, b int) *delivery {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dl := &delivery{cancel: cancel, done: make(chan struct{})}
	go func() { // owned by dl: ends after the last batch or on cancel
		defer close(dl.done)
		dl.err = dl.run(ctx, d, from, to, b)
	}()
	t.Cleanup(func() { cancel(); <-dl.done })
	return dl
}

func (dl *delivery) run(ctx context.Context, d *dovecottest.Server, from, to, b int) error {
	for lo, k := from, 0; lo < to; lo, k = lo+b, k+1 {
		hi := min(lo+b, to)
		next := lo
		if k%5 == 0 {
			if err := d.Save("INBOX", sample.Mail(lo)); err != nil {
				return fmt.Errorf("mail %d: %w", lo, err)
			}
			next++
		}
		if next < hi {
			msgs := make([][]byte, 0, hi-next)
			for i := next; i < hi; i++ {
				msgs = append(msgs, sample.Mail(i))
			}
			if err := d.Append("INBOX", msgs...); err != nil {
				return fmt.Errorf("mails %d..%d: %w", next, hi-1, err)
			}
		}
		dl.sent.Store(int64(hi - from))
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// reached reports whether n mails were delivered, and fails t when the
// delivery ended with an error.
func (dl *delivery) reached(t *testing.T, n int) bool {
	t.Helper()
	select {
	case <-dl.done:
		require.NoError(t, dl.err, "delivery")
	default:
	}
	return dl.sent.Load() >= int64(n)
}

// wait waits until every mail is delivered and fails t if one was not.
func (dl *delivery) wait(t *testing.T) {
	t.Helper()
	select {
	case <-dl.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the delivery did not end within a minute")
	}
	require.NoError(t, dl.err, "every mail delivered")
}

// oneWatcher samples, until stopped, both hosts' status through their
// admin API and Dovecot's sessions.
type oneWatcher struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	report watchReport
}

// watchReport is what oneWatcher saw.
type watchReport struct {
	rounds, dovecotRounds  int
	unknown                int      // rounds in which a running host did not answer
	both                   []string // rounds in which two hosts watched, described
	sawWatching            map[string]int
	mostSessions, mostIdle int
	twoIdle                []dovecottest.Session // the sessions of a round with two idling
}

func watchOneWatcher(t *testing.T, d *dovecottest.Server, hosts []*leaseHost) *oneWatcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &oneWatcher{cancel: cancel, done: make(chan struct{})}
	w.report.sawWatching = map[string]int{}
	t.Cleanup(func() { w.stop() })
	go func() { // owned by w: stop ends it
		defer close(w.done)
		for round := 0; ctx.Err() == nil; round++ {
			w.sampleHosts(hosts, round)
			if round%2 == 0 { // doveadm who costs a process: every other round
				w.sampleDovecot(ctx, d)
			}
			t := time.NewTimer(25 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}()
	return w
}

// sampleHosts reads a, b, a again (a and b swapping every round): two
// hosts watched at once only when b watched between two reads of a that
// both said a watched, so a hand-over between two reads is not
// mistaken for two watchers. A round in which a running host did not
// answer counts as unknown.
func (w *oneWatcher) sampleHosts(hosts []*leaseHost, round int) {
	a, b := hosts[0], hosts[1]
	if round%2 == 1 {
		a, b = b, a
	}
	sa1, ok1 := a.read()
	sb, ok2 := b.read()
	sa2, ok3 := a.read()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.report.rounds++
	if !ok1 || !ok2 || !ok3 {
		w.report.unknown++
		return
	}
	if sa1.watching() && sa2.watching() {
		w.report.sawWatching[a.name]++
	}
	if sb.watching() {
		w.report.sawWatching[b.name]++
	}
	if sa1.watching() && sb.watching() && sa2.watching() {
		w.report.both = append(w.report.both, fmt.Sprintf("round %d: %s %+v, %s %+v, %s %+v", round, a.name, sa1, b.name, sb, a.name, sa2))
	}
}

func (w *oneWatcher) sampleDovecot(ctx context.Context, d *dovecottest.Server) {
	ss, err := d.Sessions(ctx)
	if err != nil {
		return // a stopped round, or doveadm failed: nothing seen
	}
	idle := 0
	for _, s := range ss {
		if s.Idle() {
			idle++
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.report.dovecotRounds++
	w.report.mostSessions = max(w.report.mostSessions, len(ss))
	if idle > 1 && w.report.twoIdle == nil {
		w.report.twoIdle = ss
	}
	w.report.mostIdle = max(w.report.mostIdle, idle)
}

// check fails t if two hosts watched the mailbox at once, as their status
// or Dovecot's sessions showed it, so far.
func (w *oneWatcher) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	r := w.report
	w.mu.Unlock()
	require.Empty(t, r.both, "never two hosts watching the mailbox at once")
	require.LessOrEqual(t, r.mostIdle, 1, "never two sessions idling on the mailbox at once (Dovecot's view): %v", r.twoIdle)
}

// twoMoreRounds waits until the sampler has read both hosts and Dovecot
// twice more.
func (w *oneWatcher) twoMoreRounds(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	r, dr := w.report.rounds, w.report.dovecotRounds
	w.mu.Unlock()
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.report.rounds >= r+2 && w.report.dovecotRounds >= dr+2
	}, 10*time.Second, 10*time.Millisecond, "the sampler runs")
}

// stop ends the sampling and returns what it saw.
func (w *oneWatcher) stop() watchReport {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.report
}
