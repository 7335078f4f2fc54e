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
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/sample"
	"github.com/plba/plba/apps/mailorder/store/postgres"
	"github.com/plba/plba/modules/imap/dovecottest"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// Two hosts, one real Dovecot mailbox (PLBA_TEST_DOVECOT=1, with
// PLBA_TEST_POSTGRES_URL for the shared order store): both host processes
// run mailorder on one JetStream (a NATS server this test runs on
// loopback) and contend for the mailbox's lease. Mail arrives while both
// run, over IMAP APPEND and as a delivery agent would (doveadm save).
// Throughout, at most one host watches the mailbox: as both hosts' admin
// status says (holding the lease or connected) and as Dovecot says (its
// sessions in IDLE). The watching host is killed with SIGKILL midway; the
// other takes the mailbox over within the lease's bound (6 s TTL: 8 s,
// asserted under 10 s). In the end every mail left the INBOX and every
// valid mail's orders are stored exactly once.
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
		mails     = 400 // delivered in batches while both hosts run
		batch     = 20
		beforeOut = 160 // delivered before the holder is killed, at least
	)
	schema := fmt.Sprintf("dovelease_%d", time.Now().UnixNano())
	t.Cleanup(func() { dropSchema(pgURL, schema) })
	natsURL := startTestNATS(t)

	hosts := make([]*leaseHost, 2)
	for i := range hosts {
		h := &leaseHost{name: fmt.Sprintf("host-%d", i+1)}
		cfg := writeFile(t, h.name+".yaml", fmt.Sprintf(`host:
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
    urls: [%s]
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
`, natsURL, h.name, d.Host(), d.Port(), dovecottest.Username, dovecottest.Password, pgURL, schema))
		h.p = startHost(t, nil, "--config", cfg)
		hosts[i] = h
	}
	for _, h := range hosts {
		h.admin = h.p.adminAddr(t)
	}
	// One of them takes the mailbox.
	require.Eventually(t, func() bool { return watcher(hosts) != nil }, 30*time.Second, 20*time.Millisecond,
		"one host takes the mailbox: %s", hosts[0].p.output())

	// From now on, both hosts and Dovecot are watched.
	mon := watchOneWatcher(t, d, hosts)

	// Mail arrives while both run: APPEND in batches, every fifth batch
	// one mail saved as a delivery agent would.
	delivered := make(chan int, mails/batch+1)
	deliverDone := make(chan struct{})
	var deliverErr error
	deliverCtx, stopDelivery := context.WithCancel(context.Background())
	go func() { // owned by the test: ends after the last batch or on stopDelivery
		defer close(deliverDone)
		deliverErr = deliverInBatches(deliverCtx, d, mails, batch, delivered)
	}()
	t.Cleanup(func() { stopDelivery(); <-deliverDone })
	settled := func() int {
		p, err := d.Count("Processed")
		require.NoError(t, err)
		f, err := d.Count("Failed")
		require.NoError(t, err)
		return p + f
	}

	// The kill lands midway: enough mail delivered, some settled, not all.
	var sent int
	require.Eventually(t, func() bool {
		for {
			select {
			case n := <-delivered:
				sent = n
				continue
			default:
			}
			break
		}
		return sent >= beforeOut && settled() > 0
	}, 60*time.Second, 10*time.Millisecond, "mail is delivered and settled: %s", hosts[0].p.output())
	mon.check(t)
	holder := watcher(hosts)
	require.NotNil(t, holder, "one host holds the mailbox")
	atKill := settled()
	killed := time.Now()
	require.NoError(t, holder.p.cmd.Process.Signal(syscall.SIGKILL))
	<-holder.p.exited
	holder.killed = true
	mon.killed(holder)
	var next *leaseHost
	for _, h := range hosts {
		if h != holder {
			next = h
		}
	}
	require.Eventually(t, func() bool { return next.status().Lease.Held }, 20*time.Second, 20*time.Millisecond,
		"%s takes the mailbox over: %s", next.name, next.p.output())
	handOver := time.Since(killed)
	t.Logf("%s killed after %d mails delivered and %d settled; %s took the mailbox over after %v",
		holder.name, sent, atKill, next.name, handOver.Round(time.Millisecond))
	require.Less(t, handOver, 10*time.Second, "the lease hands over within its bound")
	require.Less(t, atKill, mails, "the kill must land midway for the test to mean anything")
	require.EqualValues(t, 1, next.status().Lease.HandOvers, "the new holder counts the hand-over")

	<-deliverDone
	require.NoError(t, deliverErr, "every mail delivered")
	require.Eventually(t, func() bool { return settled() == mails }, 60*time.Second, 50*time.Millisecond,
		"every mail settled: %s", next.p.output())
	require.Eventually(t, func() bool { return next.status().Source.InFlight == 0 }, 30*time.Second, 50*time.Millisecond,
		"the survivor has nothing in flight")
	report := mon.stop()
	t.Logf("watched %d rounds of both hosts' status and %d of Dovecot's sessions: most sessions at once %d, most idling %d",
		report.rounds, report.dovecotRounds, report.mostSessions, report.mostIdle)
	mon.check(t)
	require.Equal(t, 1, report.mostIdle, "Dovecot saw the watcher idle: the check saw something")
	require.Positive(t, report.sawWatching[next.name], "the survivor was seen watching")
	require.Positive(t, report.sawWatching[holder.name], "the killed host was seen watching")

	require.NoError(t, next.p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, next.p.wait(t, 30*time.Second), "%s stops cleanly: %s", next.name, next.p.output())

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
	ctx := context.Background()
	st, err := postgres.Open(ctx, postgres.Config{URL: pgURL, Schema: schema})
	require.NoError(t, err)
	defer st.Close()
	orders, err := st.List(ctx, 10*mails)
	require.NoError(t, err)
	require.Len(t, orders, want.Orders, "every valid mail's orders, none twice")
	perMail := map[string]int{}
	for _, o := range orders {
		perMail[o.MessageID]++
	}
	for i := range mails {
		require.Equal(t, sample.VariantOf(i).Orders(), perMail[sample.MessageID(i)], "mail %d", i)
	}
}

// leaseHost is one host process of TestOneHostWatchesADovecotMailbox.
type leaseHost struct {
	name, admin string
	p           *proc
	killed      bool
}

// hostSourceStatus is the mailbox source's status as a host's
// /admin/v1/status shows it: the lease and the IMAP source's own.
type hostSourceStatus struct {
	Lease  leaseStatus `json:"lease"`
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

// status reads the mailbox source's status (zero when the host does not
// answer).
func (h *leaseHost) status() hostSourceStatus {
	var zero hostSourceStatus
	resp, err := statusClient.Get("http://" + h.admin + "/admin/v1/status")
	if err != nil {
		return zero
	}
	defer resp.Body.Close()
	var st struct {
		Components []struct {
			Name    string `json:"name"`
			Details struct {
				Details hostSourceStatus `json:"details"`
			} `json:"details"`
		} `json:"components"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return zero
	}
	for _, c := range st.Components {
		if strings.HasPrefix(c.Name, "source/imap/") {
			return c.Details.Details
		}
	}
	return zero
}

// watcher is the one live host holding the mailbox's lease, nil when none
// does.
func watcher(hosts []*leaseHost) *leaseHost {
	for _, h := range hosts {
		if !h.killed && h.status().Lease.Held {
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

// deliverInBatches delivers sample mails 0..n-1 in batches of size b
// (every fifth batch's first mail with doveadm save, the rest with
// APPEND), a few milliseconds apart, sending the count delivered so far
// after each batch.
func deliverInBatches(ctx context.Context, d *dovecottest.Server, n, b int, delivered chan<- int) error {
	for from, k := 0, 0; from < n; from, k = from+b, k+1 {
		if err := ctx.Err(); err != nil {
			return err
		}
		upto := min(from+b, n)
		first := from
		if k%5 == 0 {
			if err := d.Save("INBOX", sample.Mail(from)); err != nil {
				return fmt.Errorf("mail %d: %w", from, err)
			}
			first++
		}
		if first < upto {
			msgs := make([][]byte, 0, upto-first)
			for i := first; i < upto; i++ {
				msgs = append(msgs, sample.Mail(i))
			}
			if err := d.Append("INBOX", msgs...); err != nil {
				return fmt.Errorf("mails %d..%d: %w", first, upto-1, err)
			}
		}
		select {
		case delivered <- upto:
		default:
		}
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

// oneWatcher samples, until stopped, both hosts' status through their
// admin API and Dovecot's sessions.
type oneWatcher struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	dead   map[string]bool
	report watchReport
}

// watchReport is what oneWatcher saw.
type watchReport struct {
	rounds, dovecotRounds  int
	both                   []string // rounds in which two hosts watched, described
	sawWatching            map[string]int
	mostSessions, mostIdle int
	twoIdle                []dovecottest.Session // the sessions of a round with two idling
}

func watchOneWatcher(t *testing.T, d *dovecottest.Server, hosts []*leaseHost) *oneWatcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &oneWatcher{cancel: cancel, done: make(chan struct{}), dead: map[string]bool{}}
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
// mistaken for two watchers.
func (w *oneWatcher) sampleHosts(hosts []*leaseHost, round int) {
	a, b := hosts[0], hosts[1]
	if round%2 == 1 {
		a, b = b, a
	}
	w.mu.Lock()
	aDead, bDead := w.dead[a.name], w.dead[b.name]
	w.mu.Unlock()
	var sa1, sb, sa2 hostSourceStatus
	if !aDead {
		sa1 = a.status()
	}
	if !bDead {
		sb = b.status()
	}
	if !aDead {
		sa2 = a.status()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.report.rounds++
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

// killed stops sampling h (its admin server is gone).
func (w *oneWatcher) killed(h *leaseHost) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dead[h.name] = true
}

// stop ends the sampling and returns what it saw.
func (w *oneWatcher) stop() watchReport {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.report
}
