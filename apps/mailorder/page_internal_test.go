package mailorder

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/domain"
	"github.com/plba/plba/apps/mailorder/sample"
	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// TestOrdersPage: the UI's Orders page lists the newest orders from the
// store a page at a time, and the failed mails (the queue's dead letters,
// paged by the backend's cursor) with their reasons.
func TestOrdersPage(t *testing.T) {
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.Store.SQLite.Path = filepath.Join(t.TempDir(), "orders.db")
	st, err := OpenStore(ctx, cfg.Store)
	require.NoError(t, err)
	defer st.Close()
	svc, err := domain.NewService(st, cfg.Limits)
	require.NoError(t, err)
	orders := 0
	for i := 0; orders <= pageOrders; i++ {
		if v := sample.VariantOf(i); v.Valid() && v.Orders() > 0 {
			_, err := svc.ProcessMail(ctx, sample.Mail(i))
			require.NoError(t, err)
			orders += v.Orders()
		}
	}
	b := memory.New(memory.Options{})
	defer b.Close(ctx)
	for i := range pageFailed + 3 {
		tk := &task.Task{Kind: Kind, Queue: cfg.Queue, Payload: []byte("mail"), Headers: map[string]string{
			imap.HeaderMessageID: fmt.Sprintf("m%d@example.com", i), imap.HeaderUID: fmt.Sprint(i + 1)}}
		require.NoError(t, b.Enqueue(ctx, tk))
		ds, err := b.Lease(ctx, cfg.Queue, 1, time.Minute)
		require.NoError(t, err)
		require.NoError(t, b.DeadLetter(ctx, ds[0], fmt.Sprintf("no attachment in mail %d", i)))
	}
	src, err := imap.NewSource(imap.Config{Host: "127.0.0.1", Username: "u", Password: "p", Kind: Kind}, nil)
	require.NoError(t, err)
	defer src.Close()
	a := &App{cfg: cfg, store: st, src: src, backend: b}
	pg := ordersPage(a)
	require.Equal(t, "orders", pg.Slug)

	c, err := pg.Render(httptest.NewRequest("GET", "/ui/apps/orders", nil))
	require.NoError(t, err)
	require.Len(t, c.Sections, 2)
	o, f := c.Sections[0], c.Sections[1]
	require.Len(t, o.Rows, pageOrders)
	require.Contains(t, o.Note, fmt.Sprintf("%d orders stored", orders))
	require.Equal(t, "orders=20", o.Next)
	require.Empty(t, o.Prev)
	require.Len(t, f.Rows, pageFailed)
	require.Equal(t, []any{"m0@example.com", "1", "no attachment in mail 0", 1}, f.Rows[0][:4], "attempt 1 failed for good")
	require.NotEmpty(t, f.Next)

	c, err = pg.Render(httptest.NewRequest("GET", "/ui/apps/orders?"+o.Next+"&"+f.Next, nil))
	require.NoError(t, err)
	o2, f2 := c.Sections[0], c.Sections[1]
	require.Len(t, o2.Rows, orders-pageOrders)
	require.NotEqual(t, o.Rows[0][0], o2.Rows[0][0])
	require.Equal(t, "failed="+f.Next[len("failed="):], f.Next)
	require.Len(t, f2.Rows, 3, "the rest of the failed mails")
	require.Equal(t, "m20@example.com", f2.Rows[0][0])
	require.Empty(t, f2.Next)
	require.NotEmpty(t, o2.Prev)
}

// The Orders page does not show as failed a mail that a later run stored:
// its dead letter is shown resolved, as the status does.
func TestOrdersPageShowsMailsStoredLaterResolved(t *testing.T) {
	ctx := context.Background()
	cfg, st, svc := testStore(t)
	valid := validMails(2)
	stored, notStored := valid[0], valid[1]
	_, err := svc.ProcessMail(ctx, sample.Mail(stored)) // the later run
	require.NoError(t, err)
	dead := &fakeDead{}
	for _, i := range []int{stored, notStored} {
		dead.items = append(dead.items, queue.DeadLetter{Reason: "database down", Task: &task.Task{ID: fmt.Sprint("t", i),
			Payload: sample.Mail(i), Headers: map[string]string{imap.HeaderMessageID: sample.MessageID(i)}}})
	}
	a := testApp(t, cfg, st, dead)
	c, err := ordersPage(a).Render(httptest.NewRequest("GET", "/ui/apps/orders", nil))
	require.NoError(t, err)
	f := c.Sections[1]
	require.Len(t, f.Rows, 2)
	state := map[any]any{}
	for _, r := range f.Rows {
		state[r[0]] = r[len(r)-1]
	}
	require.Equal(t, map[any]any{sample.MessageID(stored): stateResolved, sample.MessageID(notStored): stateFailed}, state)
}
