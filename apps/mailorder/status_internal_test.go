package mailorder

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/domain"
	"github.com/plba/plba/apps/mailorder/sample"
	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// fakeDead serves its dead letters as a backend does: pages without
// payloads, one dead letter whole; it counts the whole reads.
type fakeDead struct {
	items []queue.DeadLetter
	gets  []string
}

func (f *fakeDead) QueryDead(_ context.Context, _ string, q queue.DeadQuery) (queue.DeadPage, error) {
	var page queue.DeadPage
	for _, d := range f.items {
		if len(page.Items) == q.PageLimit() {
			break
		}
		if q.Kind != "" && d.Task.Kind != q.Kind {
			continue
		}
		t := *d.Task
		d.PayloadSize, t.Payload = len(t.Payload), nil
		d.Task = &t
		page.Items = append(page.Items, d)
	}
	return page, nil
}

func (f *fakeDead) GetDead(_ context.Context, _ string, id string) (queue.DeadLetter, error) {
	f.gets = append(f.gets, id)
	for _, d := range f.items {
		if d.Task.ID == id {
			return d, nil
		}
	}
	return queue.DeadLetter{}, queue.ErrNotFound
}

// A dead letter whose mail a later run stored (every order of it is in the
// store) is resolved: the status does not list it as failed.
func TestStatusResolvesDeadLettersOfMailsStoredLater(t *testing.T) {
	ctx := context.Background()
	cfg, st, svc := testStore(t)
	valid := validMails(2)
	stored, notStored := valid[0], valid[1]
	_, err := svc.ProcessMail(ctx, sample.Mail(stored)) // the later run
	require.NoError(t, err)

	dead := &fakeDead{}
	for _, i := range []int{stored, notStored} {
		dead.items = append(dead.items, queue.DeadLetter{Reason: "database down", Task: &task.Task{ID: fmt.Sprint("t", i), Kind: Kind,
			Payload: sample.Mail(i), Headers: map[string]string{imap.HeaderMessageID: sample.MessageID(i)}}})
	}
	dead.items = append(dead.items, queue.DeadLetter{Reason: "message of 9.1 MiB exceeds the queue's max payload of 8 MiB",
		Task: &task.Task{ID: "big", Kind: Kind, Headers: map[string]string{imap.HeaderMessageID: "big@example.com"}}})
	// A mail the domain rejected is not read whole: it cannot have orders.
	dead.items = append(dead.items, queue.DeadLetter{Reason: `mail <bad@example.com> from "a" (subject "b")` + rejectedMarker + "no attachment",
		Task: &task.Task{ID: "bad", Kind: Kind, Payload: []byte("Subject: b\r\n\r\nno attachment"), Headers: map[string]string{imap.HeaderMessageID: "bad@example.com"}}})

	a := testApp(t, cfg, st, dead)
	s, err := a.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, s.ResolvedMails)
	var failed []string
	for _, f := range s.FailedMails {
		failed = append(failed, f.MessageID)
	}
	require.Equal(t, []string{sample.MessageID(notStored), "big@example.com", "bad@example.com"}, failed)
	require.Equal(t, []string{fmt.Sprint("t", stored), fmt.Sprint("t", notStored)}, dead.gets,
		"only the dead letters that could be resolved are read with their payloads")
}

// A dead letter of a mail that failed for a passing reason (the handler's
// "mailorder: mail <id>: ..." reason) is resolved when a later run stored
// it, even when its Message-ID (the sender's, used as is when malformed)
// looks like the reason of a rejected mail.
func TestStatusResolvesTransientFailureWhoseIDLooksRejected(t *testing.T) {
	ctx := context.Background()
	cfg, st, svc := testStore(t)
	i := validMails(1)[0]
	_, err := svc.ProcessMail(ctx, sample.Mail(i)) // the later run
	require.NoError(t, err)

	reason := fmt.Sprintf("mailorder: mail <%s>: %s", "x"+rejectedMarker+"y", "database down")
	dead := &fakeDead{items: []queue.DeadLetter{{Reason: reason, Task: &task.Task{ID: "t", Kind: Kind, Payload: sample.Mail(i),
		Headers: map[string]string{imap.HeaderMessageID: sample.MessageID(i)}}}}}
	a := testApp(t, cfg, st, dead)
	s, err := a.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, s.ResolvedMails)
	require.Empty(t, s.FailedMails)
}

// The failed mails are the dead letters of the application's kind: a
// queue shared with another application (mailorder.queue: default) holds
// dead letters of other kinds, which are not mails. Before, the status
// listed them as failed mails (and read their payloads to look for
// orders); the Orders page already kept to the kind.
func TestStatusListsOnlyDeadLettersOfMails(t *testing.T) {
	ctx := context.Background()
	cfg, st, _ := testStore(t)
	dead := &fakeDead{items: []queue.DeadLetter{
		{Reason: "invoice 7: printer on fire", Task: &task.Task{ID: "other", Kind: "invoices.print", Payload: []byte(`{"invoice":7}`)}},
		{Reason: `mail <bad@example.com> from "a" (subject "b")` + rejectedMarker + "no attachment",
			Task: &task.Task{ID: "bad", Kind: Kind, Payload: []byte("Subject: b\r\n\r\nno attachment"), Headers: map[string]string{imap.HeaderMessageID: "bad@example.com"}}},
	}}
	a := testApp(t, cfg, st, dead)
	s, err := a.Status(ctx)
	require.NoError(t, err)
	require.Len(t, s.FailedMails, 1)
	require.Equal(t, "bad@example.com", s.FailedMails[0].MessageID)
	require.Zero(t, s.ResolvedMails)
	require.Empty(t, dead.gets, "no payload of another kind is read")
}

// The status and the Orders page show a failed mail's Message-ID (the
// server's envelope, read by the source) as the domain shows a mail's
// text: a bidirectional override in it does not reorder the page.
func TestFailedMailsShowTheirMessageIDClean(t *testing.T) {
	ctx := context.Background()
	cfg, st, _ := testStore(t)
	dead := &fakeDead{items: []queue.DeadLetter{{Reason: "too big", Task: &task.Task{ID: "big", Kind: Kind,
		Headers: map[string]string{imap.HeaderMessageID: "evil\u202emoc.elpmaxe@example.com"}}}}}
	a := testApp(t, cfg, st, dead)
	s, err := a.Status(ctx)
	require.NoError(t, err)
	require.Len(t, s.FailedMails, 1)
	require.Equal(t, "evil\ufffdmoc.elpmaxe@example.com", s.FailedMails[0].MessageID)
	c, err := ordersPage(a).Render(httptest.NewRequest("GET", "/ui/apps/orders", nil))
	require.NoError(t, err)
	require.Len(t, c.Sections[1].Rows, 1)
	require.Equal(t, "evil\ufffdmoc.elpmaxe@example.com", c.Sections[1].Rows[0][0])
}

// testStore opens an order store (SQLite in t's temp dir, closed at the
// end of the test) and the domain service that stores into it.
func testStore(t *testing.T) (Config, Store, *domain.Service) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Store.SQLite.Path = filepath.Join(t.TempDir(), "orders.db")
	st, err := OpenStore(context.Background(), cfg.Store)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	svc, err := domain.NewService(st, cfg.Limits)
	require.NoError(t, err)
	return cfg, st, svc
}

// validMails returns the numbers of the first n sample mails that make
// orders.
func validMails(n int) []int {
	var out []int
	for i := 0; len(out) < n; i++ {
		if sample.VariantOf(i).Valid() && sample.VariantOf(i).Orders() > 0 {
			out = append(out, i)
		}
	}
	return out
}

// testApp is an App on st and backend, with an IMAP source that is never
// started.
func testApp(t *testing.T, cfg Config, st Store, backend deadLister) *App {
	t.Helper()
	src, err := imap.NewSource(imap.Config{Host: "127.0.0.1", Username: "u", Password: "p", Kind: Kind}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	return &App{cfg: cfg, store: st, src: src, backend: backend}
}
