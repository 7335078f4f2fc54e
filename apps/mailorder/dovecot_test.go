package mailorder_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder"
	"github.com/plba/plba/apps/mailorder/sample"
	"github.com/plba/plba/apps/mailorder/store/sqlite"
	"github.com/plba/plba/modules/imap/dovecottest"
)

// The pilot against a real Dovecot 2.3 (PLBA_TEST_DOVECOT=1), run as the
// host binary with the shipped configuration's values (concurrency 4,
// JetStream embedded, SQLite).

type dovecotHost struct {
	d   *dovecottest.Server
	cfg string // the host's config file
	db  string
	p   *proc // the host process started last (run)
}

func newDovecotHost(t *testing.T, d *dovecottest.Server, extra string) *dovecotHost {
	t.Helper()
	dir := t.TempDir()
	h := &dovecotHost{d: d, cfg: filepath.Join(dir, "host.yaml"), db: filepath.Join(dir, "data", "orders.db")}
	require.NoError(t, os.WriteFile(h.cfg, []byte(fmt.Sprintf(`host:
  apps: [mailorder]
log:
  format: json
  level: info
admin:
  listen: 127.0.0.1:0
queue:
  backend: jetstream
  jetstream:
    embedded:
      store_dir: %s
workers:
  mailorder:
    concurrency: 4
    max_attempts: 5
    task_timeout: 2m
    drain_timeout: 2s
mailorder:
  mailbox:
    host: %s
    port: %d
    tls: none
    username: %s
    password: %s
    mode: idle
    reconcile: 2m
    batch_size: 50
%s  store:
    sqlite:
      path: %s
`, filepath.Join(dir, "nats"), d.Host(), d.Port(), dovecottest.Username, dovecottest.Password, extra, h.db)), 0o600))
	return h
}

func (h *dovecotHost) count(t *testing.T, box string) int {
	t.Helper()
	n, err := h.d.Count(box)
	require.NoError(t, err)
	return n
}

func (h *dovecotHost) settled(t *testing.T) int {
	return h.count(t, "Processed") + h.count(t, "Failed")
}

// run starts the host and makes it the one whose admin server the
// helpers below ask.
func (h *dovecotHost) run(t *testing.T) *proc {
	t.Helper()
	h.p = runHost(t, h.cfg)
	return h.p
}

// admin is the address the running host's admin server listens on (the
// kernel chose the port), from its log; "" until it has logged it. A
// port picked free beforehand and then passed to the host could be taken
// in between by another test's process.
func (h *dovecotHost) admin() string {
	for _, line := range strings.Split(h.p.out.String(), "\n") {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "admin server listening" {
			return rec.Addr
		}
	}
	return ""
}

// ordersStored is the count of stored orders the host's status reports,
// or 0 while its admin server does not answer yet.
func (h *dovecotHost) ordersStored() int {
	addr := h.admin()
	if addr == "" {
		return 0
	}
	resp, err := http.Get("http://" + addr + mailorder.StatusPath)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var st mailorder.Status
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return 0
	}
	return st.Orders
}

func (h *dovecotHost) status(t *testing.T) mailorder.Status {
	t.Helper()
	addr := h.admin()
	require.NotEmpty(t, addr, "the host logged its admin address: %s", h.p.out.String())
	resp, err := http.Get("http://" + addr + mailorder.StatusPath)
	require.NoError(t, err)
	defer resp.Body.Close()
	var st mailorder.Status
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

func deliverSamples(t *testing.T, d *dovecottest.Server, from, n int) {
	t.Helper()
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = sample.Mail(from + i)
	}
	require.NoError(t, d.Append("INBOX", msgs...))
}

// checkOrders: the store holds exactly the orders of mails 0..n-1, none
// twice.
func (h *dovecotHost) checkOrders(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: h.db})
	require.NoError(t, err)
	defer s.Close()
	orders, err := s.List(ctx, 10*n)
	require.NoError(t, err)
	require.Len(t, orders, sample.Count(n).Orders, "every valid mail's orders, none twice")
	perMail := map[string]int{}
	for _, o := range orders {
		perMail[o.MessageID]++
	}
	for i := range n {
		require.Equal(t, sample.VariantOf(i).Orders(), perMail[sample.MessageID(i)], "mail %d", i)
	}
}

// 300 mails, and the IMAP server stopped for 30 s in the middle of the
// intake: no handled mail is dead-lettered (the only dead letters are the
// invalid sample mails), and every mail leaves the INBOX once the server
// is back (issue 10: 242 of 290 were dead-lettered).
func TestDovecotOutageDeadLettersNoHandledMail(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the host binary for a minute")
	}
	t.Parallel()
	d := dovecottest.Start(t)
	const n = 300
	want := sample.Count(n)
	deliverSamples(t, d, 0, n)
	h := newDovecotHost(t, d, "")
	p := h.run(t)

	require.Eventually(t, func() bool { return h.settled(t) >= n/5 }, 60*time.Second, 5*time.Millisecond,
		"the host settles mails: %s", p.out.String())
	d.Stop()
	stoppedAt := time.Now()
	time.Sleep(30 * time.Second)
	d.Resume()
	back := time.Now()
	t.Logf("server down %s", back.Sub(stoppedAt).Round(time.Millisecond))
	require.Eventually(t, func() bool { return h.settled(t) == n }, 90*time.Second, 20*time.Millisecond,
		"every mail settled once the server is back: %s", p.out.String())
	settledIn := time.Since(back)
	t.Logf("all %d mails settled %s after the server was back", n, settledIn.Round(time.Millisecond))
	// The reconnect back-off is capped at 2 s by default: a server that is
	// back is used within about that (wide margin for a loaded machine).
	require.Less(t, settledIn, 10*time.Second, "the completions resume soon after the server is back")

	require.Zero(t, h.count(t, "INBOX"))
	require.Equal(t, want.Valid, h.count(t, "Processed"))
	require.Equal(t, want.Invalid, h.count(t, "Failed"))
	st := h.status(t)
	require.Len(t, st.FailedMails, want.Invalid, "only the invalid mails are dead letters")
	for _, f := range st.FailedMails {
		require.Contains(t, f.Reason, "rejected: ", "a failed mail is an invalid one, not a handled one: %+v", f)
	}
	require.Eventually(t, func() bool { st := h.status(t).Mailbox; return st.Connected && st.LastError == "" }, 10*time.Second, 50*time.Millisecond,
		"the source's status shows it reconnected")

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.wait(t, 30*time.Second), p.out.String())
	h.checkOrders(t, n)
}

// kill -9 of the host during a 500-mail intake, then a restart on the
// same queue and database: no mail lost, no order twice, none left in
// the INBOX; a mail handled and acked but not yet moved when the host died
// is emitted again after the restart, handled idempotently and moved.
func TestDovecotCrashLosesNothingDuplicatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the host binary")
	}
	t.Parallel()
	d := dovecottest.Start(t)
	const n = 500
	want := sample.Count(n)
	deliverSamples(t, d, 0, n)
	h := newDovecotHost(t, d, "")

	p := h.run(t)
	// The kill lands as soon as the first orders are stored: on an idle
	// machine the host takes in 500 mails in well under a second, and
	// moves them in a few large batches.
	ordersAtKill := 0
	require.Eventually(t, func() bool { ordersAtKill = h.ordersStored(); return ordersAtKill > 0 }, 60*time.Second, time.Millisecond,
		"the first host stores orders: %s", p.out.String())
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	p.wait(t, 10*time.Second)
	before := h.settled(t)
	t.Logf("killed after %d of %d orders were stored, %d of %d mails settled", ordersAtKill, want.Orders, before, n)
	require.Less(t, ordersAtKill, want.Orders, "the kill must land midway for the test to mean anything")

	p2 := h.run(t)
	require.Eventually(t, func() bool { return h.settled(t) == n }, 120*time.Second, 20*time.Millisecond,
		"the restarted host settles every mail: %s", p2.out.String())
	require.Zero(t, h.count(t, "INBOX"))
	require.Equal(t, want.Valid, h.count(t, "Processed"))
	require.Equal(t, want.Invalid, h.count(t, "Failed"))
	require.NoError(t, p2.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p2.wait(t, 30*time.Second), p2.out.String())
	h.checkOrders(t, n)
}

// A max_message_size the queue cannot carry is reported at start, naming
// the key; the shipped default fits, and a mail above it is a dead letter
// with its reason and moves to Failed while the mail after it is stored.
func TestDovecotMaxMessageSizeAndTooLargeMail(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the host binary")
	}
	t.Parallel()
	d := dovecottest.Start(t)
	bad := newDovecotHost(t, d, "    max_message_size: 26214400\n")
	p := runHost(t, bad.cfg)
	require.NotEqual(t, 0, p.wait(t, 60*time.Second))
	require.Contains(t, p.out.String(), "mailorder.mailbox.max_message_size: 26214400 (25 MiB) is more than the queue backend can carry")

	valid := 0
	for !sample.VariantOf(valid).Valid() {
		valid++
	}
	big := string(sample.Mail(valid+1)) + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 9_500_000/78)
	require.NoError(t, d.Append("INBOX", []byte(big)))
	deliverSamples(t, d, valid, 1)
	h := newDovecotHost(t, d, "")
	p2 := h.run(t)
	require.Eventually(t, func() bool { return h.settled(t) == 2 }, 60*time.Second, 20*time.Millisecond,
		"both mails settled: %s", p2.out.String())
	ids, err := d.MessageIDs("Failed")
	require.NoError(t, err)
	require.Equal(t, []string{sample.MessageID(valid + 1)}, ids, "the too-large mail is in Failed")
	require.Equal(t, 1, h.count(t, "Processed"), "the mail after it is stored")
	var reasons []string
	for _, f := range h.status(t).FailedMails {
		if f.MessageID == sample.MessageID(valid+1) {
			reasons = append(reasons, f.Reason)
		}
	}
	require.Len(t, reasons, 1, "the too-large mail is a dead letter with its reason")
	require.Contains(t, reasons[0], "exceeds max_message_size of 7 MiB")
	require.NoError(t, p2.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p2.wait(t, 30*time.Second), p2.out.String())
}
