package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/sample"
	"github.com/plba/plba/apps/mailorder/store/postgres"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
)

// Many hosts, one workload (PLBA_TEST_CLUSTER=1, with
// PLBA_TEST_POSTGRES_URL for the shared order store): three nats-server
// processes as a JetStream cluster, three host processes on R3 streams
// running mailorder (on the in-memory IMAP server) and loadgen (tasks
// and a schedule every second). The host holding the mailbox's lease is
// killed with SIGKILL, then the NATS server leading loadgen's work stream
// is stopped. In the end: no task lost, duplicates counted, no order
// twice, every mail moved, the mailbox watched by one host at a time, the
// lease (TTL 3 s) handed over in under 10 s, each scheduled run once, and
// the schedule's runs going on within an attempt timeout of the stop.
func TestClusterThreeHostsOneWorkload(t *testing.T) {
	if os.Getenv("PLBA_TEST_CLUSTER") == "" {
		t.Skip("set PLBA_TEST_CLUSTER=1 to run three nats-server and three host processes")
	}
	pgURL := os.Getenv("PLBA_TEST_POSTGRES_URL")
	if pgURL == "" {
		t.Skip("the cluster test keeps the orders in PostgreSQL: set PLBA_TEST_POSTGRES_URL")
	}
	const (
		// 3,000 before the kill, 200 after it: an idle machine settles
		// about 2,000 mails a second, and the kill must land midway.
		mails = 3200
		first = 3000
		tasks = 3000
	)
	schema := fmt.Sprintf("cluster_%d", time.Now().UnixNano())
	t.Cleanup(func() { dropSchema(pgURL, schema) })

	nodes := startNATSCluster(t, 3)
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.url()
	}
	srv := imaptest.NewServer(t, memserver.Options{})
	for i := range first {
		_, err := srv.Append("INBOX", sample.Mail(i))
		require.NoError(t, err)
	}
	dir := t.TempDir()
	type hostRun struct {
		name, rec, admin string
		p                *proc
		killed           bool
	}
	hosts := make([]*hostRun, 3)
	for i := range hosts {
		h := &hostRun{name: fmt.Sprintf("host-%d", i+1), rec: filepath.Join(dir, fmt.Sprintf("host-%d.txt", i+1))}
		cfg := writeFile(t, h.name+".yaml", fmt.Sprintf(`host:
  apps: [mailorder, loadgen]
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
    replicas: 3
    ack_wait: 5s
sources:
  lease:
    holder: %s
    ttl: 3s # a new bucket gives its first lease a TTL after its creation: the schedule loses those ticks
workers:
  mailorder: {concurrency: 2, drain_timeout: 1s}
  loadgen: {concurrency: 4, drain_timeout: 1s}
mailorder:
  mailbox:
    host: %s
    port: %d
    tls: none
    username: %s
    password: %s
    batch_size: 20
    reconcile: 5s
    reconnect: {initial: 100ms, max: 1s}
  store:
    driver: postgres
    postgres: {url: %q, schema: %s}
loadgen:
  count: %d
  batch: 250
  work: 1ms
  every: 1s
  record_file: %s
`, strings.Join(urls, ", "), h.name, srv.Host(), srv.Port(), imaptest.Username, imaptest.Password, pgURL, schema, tasks, h.rec))
		h.p = startHost(t, nil, "--config", cfg)
		hosts[i] = h
	}
	for _, h := range hosts {
		select {
		case h.admin = <-h.p.admin:
		case <-h.p.exited:
			t.Fatalf("%s exited (%d): %s\nNATS n1: %s", h.name, h.p.code, h.p.output(), readTail(nodes[0].log))
		case <-time.After(90 * time.Second):
			t.Fatalf("%s did not start: %s", h.name, h.p.output())
		}
	}
	began := time.Now()
	settled := func() int { return len(mailsIn(t, srv, "Processed")) + len(mailsIn(t, srv, "Failed")) }
	handled := func() (map[string]int, int) {
		all, lines := map[string]int{}, 0
		for _, h := range hosts {
			ids, n := recorded(t, h.rec)
			for id, c := range ids {
				all[id] += c
			}
			lines += n
		}
		return all, lines
	}
	loadgenDone := func(all map[string]int) int {
		n := 0
		for id := range all {
			if strings.HasPrefix(id, "lg-") {
				n++
			}
		}
		return n
	}

	// Work flows; find the host that watches the mailbox.
	require.Eventually(t, func() bool { all, _ := handled(); return loadgenDone(all) > 0 },
		120*time.Second, 5*time.Millisecond, "loadgen work flows: %s", hosts[0].p.output())
	var holder *hostRun
	require.Eventually(t, func() bool {
		holder = nil
		for _, h := range hosts {
			if held, _ := mailboxLease(h.admin); held {
				if holder != nil {
					return false // two holders: asked again (and never two for long)
				}
				holder = h
			}
		}
		return holder != nil
	}, 120*time.Second, 5*time.Millisecond, "one host holds the mailbox's lease")
	// The kill must land while the mailbox is being worked: as soon as its
	// first mails settle, watching nothing else in between.
	require.Eventually(t, func() bool { return settled() > 0 },
		120*time.Second, 2*time.Millisecond, "mails settle: %s", holder.p.output())

	// kill -9 the holder; another host takes the mailbox over.
	killed := time.Now()
	atKill := settled()
	require.NoError(t, holder.p.cmd.Process.Signal(syscall.SIGKILL))
	<-holder.p.exited
	holder.killed = true
	var next *hostRun
	require.Eventually(t, func() bool {
		for _, h := range hosts {
			if !h.killed {
				if held, _ := mailboxLease(h.admin); held {
					next = h
					return true
				}
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond)
	handOver := time.Since(killed)
	t.Logf("mailbox lease: %s killed, %s took over after %v (%d of %d mails settled at the kill)", holder.name, next.name, handOver, atKill, first)
	require.Less(t, handOver, 10*time.Second, "the lease hands over in under 10 s")
	require.Less(t, atKill, first, "the kill must land midway for the test to mean anything")
	// Mail keeps arriving: the new holder reads it.
	for i := first; i < mails; i++ {
		_, err := srv.Append("INBOX", sample.Mail(i))
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, mailboxLeaseStatus(next.admin).HandOvers, "the new holder counts the hand-over")

	// Then a NATS server stops: the one leading loadgen's work stream,
	// where the schedule's emits go (they get no answer until another
	// server leads it).
	time.Sleep(2 * time.Second)
	var stop *natsNode
	require.Eventually(t, func() bool {
		leader, err := streamLeader(nodes[0].url(), "PLBA_Q_loadgen")
		for _, n := range nodes {
			if err == nil && n.name == leader {
				stop = n
			}
		}
		return stop != nil
	}, 10*time.Second, 100*time.Millisecond, "the work stream PLBA_Q_loadgen has a leader")
	stop.stop(t)
	stopped := time.Now()
	t.Logf("stopped NATS server %s, the work stream's leader", stop.name)

	require.Eventually(t, func() bool { return settled() == mails }, 180*time.Second, 100*time.Millisecond,
		"every mail settled: %s", next.p.output())
	require.Eventually(t, func() bool { all, _ := handled(); return loadgenDone(all) == tasks }, 180*time.Second, 100*time.Millisecond,
		"every task handled")
	time.Sleep(5 * time.Second) // more ticks on the survivors
	ended := time.Now()
	ran := ended.Sub(began)
	for _, h := range hosts {
		if !h.killed {
			require.NoError(t, h.p.cmd.Process.Signal(syscall.SIGTERM))
		}
	}
	for _, h := range hosts {
		<-h.p.exited
		if !h.killed {
			require.Equal(t, 0, h.p.code, "%s stops cleanly: %s", h.name, h.p.output())
		}
	}

	// No task lost; duplicates counted.
	all, _ := handled()
	var dupTasks, ticks, dupTicks int
	var tickTimes []string
	for id, c := range all {
		switch {
		case strings.HasPrefix(id, "lg-"):
			dupTasks += c - 1
		case strings.HasPrefix(id, "tick@"):
			ticks++
			dupTicks += c - 1
			tickTimes = append(tickTimes, id)
		}
	}
	sort.Strings(tickTimes)
	t.Logf("loadgen: %d tasks handled, %d handled twice; schedule: %d runs, %d twice, from %s to %s",
		tasks, dupTasks, ticks, dupTicks, tickTimes[0], tickTimes[len(tickTimes)-1])
	require.Equal(t, tasks, loadgenDone(all), "no task lost")
	require.LessOrEqual(t, dupTasks, 4*(4+64), "a task runs twice only when its host died (or its ack was lost) after the handler: at most what was in flight")
	require.Zero(t, dupTicks, "each scheduled run once")
	gaps := tickGaps(tickTimes, 1500*time.Millisecond)
	atStop := widestGapAfter(tickTimes, stopped, ended)
	t.Logf("schedule: gaps over 1.5 s between runs: %v (the hosts started at %s, the kill at %s, the NATS server stopped at %s); the widest after the stop: %v; %d runs in %v",
		gaps, began.UTC().Format(time.RFC3339Nano), killed.UTC().Format(time.RFC3339), stopped.UTC().Format(time.RFC3339Nano), atStop, ticks, ran)
	// The server that led the work stream stopped: an emit in flight (or
	// sent before another server leads it) gets no answer. Its attempt is
	// cut at its timeout (2 s for a schedule every second) and retried
	// with the same key, which the new leader stores: not after JetStream's
	// publish_timeout (10 s), while the due times pass (before the
	// attempt timeout, runs saw gaps of 10 s at the stop). Allowed: one
	// attempt timeout, or a hand-over of the schedule's lease (TTL 3 s),
	// and the retry's back-off.
	require.Less(t, atStop, 8*time.Second, "the schedule runs on within an attempt timeout of the work stream leader's stop; gaps %v", gaps)
	// Allowed besides: the first lease of a new bucket, and the hand-over
	// of the schedule's lease at the kill (TTL 3 s).
	require.Greater(t, ticks, int(ran/time.Second)-12, "one run a second, but for the first lease, its hand-over at the kill and an attempt timeout at the server's stop; gaps %v", gaps)

	// Every mail moved, no order twice.
	want := sample.Count(mails)
	require.Empty(t, mailsIn(t, srv, "INBOX"))
	require.Len(t, mailsIn(t, srv, "Processed"), want.Valid)
	require.Len(t, mailsIn(t, srv, "Failed"), want.Invalid)
	checkOrdersOnce(t, pgURL, schema, mails)

	// The mailbox was watched by one host at a time.
	_, most := srv.Idlers()
	require.Equal(t, 1, most, "never two hosts idling on the mailbox at once")
}

// mailboxLease reads whether the host at addr holds the mailbox source's
// lease, and who does as it sees it.
func mailboxLease(addr string) (held bool, holder string) {
	l := mailboxLeaseStatus(addr)
	return l.Held, l.Holder
}

// leaseStatus is a lease's status as a host's /admin/v1/status shows it.
type leaseStatus struct {
	Held      bool   `json:"held"`
	Holder    string `json:"holder"`
	HandOvers int64  `json:"hand_overs"`
}

// mailboxLeaseStatus reads the mailbox source's lease from the host at
// addr (zero when it cannot).
func mailboxLeaseStatus(addr string) leaseStatus {
	resp, err := http.Get("http://" + addr + "/admin/v1/status")
	if err != nil {
		return leaseStatus{}
	}
	defer resp.Body.Close()
	var st struct {
		Components []struct {
			Name    string `json:"name"`
			Details struct {
				Details struct {
					Lease leaseStatus `json:"lease"`
				} `json:"details"`
			} `json:"details"`
		} `json:"components"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return leaseStatus{}
	}
	for _, c := range st.Components {
		if strings.HasPrefix(c.Name, "source/imap/") {
			return c.Details.Details.Lease
		}
	}
	return leaseStatus{}
}

func mailsIn(t *testing.T, srv *memserver.Server, name string) []memserver.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := srv.Messages(ctx, name)
	if err != nil && strings.Contains(err.Error(), "No such mailbox") {
		return nil
	}
	require.NoError(t, err)
	return msgs
}

func dropSchema(url, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return
	}
	defer c.Close(ctx)
	_, _ = c.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
}

// checkOrdersOnce checks that the order store in PostgreSQL (pgURL,
// schema) holds the orders of the first mails sample mails, each once.
func checkOrdersOnce(t *testing.T, pgURL, schema string, mails int) {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, postgres.Config{URL: pgURL, Schema: schema})
	require.NoError(t, err)
	defer st.Close()
	orders, err := st.List(ctx, 10*mails)
	require.NoError(t, err)
	require.Len(t, orders, sample.Count(mails).Orders, "every valid mail's orders, none twice")
	perMail := map[string]int{}
	for _, o := range orders {
		perMail[o.MessageID]++
	}
	for i := range mails {
		require.Equal(t, sample.VariantOf(i).Orders(), perMail[sample.MessageID(i)], "mail %d", i)
	}
}

// widestGapAfter returns the widest gap between consecutive runs of the
// schedule (sorted tick ids) that ends after at, the one from the last
// run to end (when the hosts were stopped) included: a schedule that
// stopped running after at has that gap.
func widestGapAfter(sorted []string, at, end time.Time) time.Duration {
	var widest time.Duration
	prev := at
	for _, id := range sorted {
		due, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(id, "tick@"))
		if err != nil {
			continue
		}
		if due.After(at) {
			widest = max(widest, due.Sub(prev))
		}
		prev = due
	}
	return max(widest, end.Sub(prev))
}

// tickGaps returns the gaps longer than over between the due times of
// sorted schedule task ids ("tick@<RFC 3339 time>"), each as its start
// and length.
func tickGaps(sorted []string, over time.Duration) []string {
	var gaps []string
	var prev time.Time
	for _, id := range sorted {
		at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(id, "tick@"))
		if err != nil {
			continue
		}
		if !prev.IsZero() && at.Sub(prev) > over {
			gaps = append(gaps, prev.Format("15:04:05")+"+"+at.Sub(prev).String())
		}
		prev = at
	}
	return gaps
}

// The widest gap after a time counts the one from the last run to the
// end: a schedule that stopped running then had no gap between runs
// after it, and passed the bound on its gaps.
func TestWidestGapAfter(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return v
	}
	ticks := []string{"tick@2026-12-04T10:00:00Z", "tick@2026-12-04T10:00:01Z", "tick@2026-12-04T10:00:05Z", "tick@2026-12-04T10:00:06Z"}
	require.Equal(t, 4*time.Second, widestGapAfter(ticks, at("2026-12-04T10:00:01.5Z"), at("2026-12-04T10:00:07Z")))
	require.Equal(t, 10*time.Second, widestGapAfter(ticks, at("2026-12-04T10:00:01.5Z"), at("2026-12-04T10:00:16Z")),
		"the runs stopped after the last")
	require.Equal(t, 20*time.Second, widestGapAfter(ticks, at("2026-12-04T10:00:10Z"), at("2026-12-04T10:00:26Z")),
		"no run after the time")
}
