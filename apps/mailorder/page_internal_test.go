package mailorder

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/domain"
	"github.com/plba/plba/apps/mailorder/sample"
	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/ui"
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
		dead.items = append(dead.items, queue.DeadLetter{Reason: "database down", Task: &task.Task{ID: fmt.Sprint("t", i), Kind: Kind,
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

// pagedApp is an App whose Orders page has three pages of orders and
// four of failed mails (m0@example.com to m61@example.com).
func pagedApp(t *testing.T) *App {
	t.Helper()
	ctx := context.Background()
	cfg, st, svc := testStore(t)
	orders := 0
	for i := 0; orders <= 2*pageOrders; i++ {
		if v := sample.VariantOf(i); v.Valid() && v.Orders() > 0 {
			_, err := svc.ProcessMail(ctx, sample.Mail(i))
			require.NoError(t, err)
			orders += v.Orders()
		}
	}
	b := memory.New(memory.Options{})
	t.Cleanup(func() { b.Close(ctx) })
	for i := range 3*pageFailed + 2 {
		tk := &task.Task{Kind: Kind, Queue: cfg.Queue, Payload: []byte("mail"), Headers: map[string]string{
			imap.HeaderMessageID: fmt.Sprintf("m%d@example.com", i), imap.HeaderUID: fmt.Sprint(i + 1)}}
		require.NoError(t, b.Enqueue(ctx, tk))
		ds, err := b.Lease(ctx, cfg.Queue, 1, time.Minute)
		require.NoError(t, err)
		require.NoError(t, b.DeadLetter(ctx, ds[0], "no attachment"))
	}
	return testApp(t, cfg, st, b)
}

// TestOrdersPagePrevious: "Previous" goes back one page, for the orders
// (an offset) and the failed mails (the backend's forward-only cursor)
// alike, and paging one table keeps the other on its page.
func TestOrdersPagePrevious(t *testing.T) {
	pg := ordersPage(pagedApp(t))
	// render opens the page at query (a section's Next or Prev) and
	// returns its two sections.
	render := func(query string) (o, f ui.Section) {
		t.Helper()
		c, err := pg.Render(httptest.NewRequest("GET", "/ui/apps/orders?"+query, nil))
		require.NoError(t, err)
		require.Len(t, c.Sections, 2)
		return c.Sections[0], c.Sections[1]
	}
	first := func(s ui.Section) any { t.Helper(); require.NotEmpty(t, s.Rows); return s.Rows[0][0] }

	o1, f1 := render("")
	require.Empty(t, f1.Prev)
	_, f2 := render(f1.Next)
	_, f3 := render(f2.Next)
	require.Equal(t, "m40@example.com", first(f3))
	_, back := render(f3.Prev)
	require.Equal(t, f2.Rows, back.Rows, "Previous from the third page of failed mails shows the second")
	_, back = render(back.Prev)
	require.Equal(t, f1.Rows, back.Rows)
	require.Empty(t, back.Prev)
	_, fwd := render(f2.Prev)
	_, fwd = render(fwd.Next)
	_, fwd = render(fwd.Next)
	require.Equal(t, f3.Rows, fwd.Rows, "Next after Previous goes forward again")

	o2, _ := render(o1.Next)
	o3, _ := render(o2.Next)
	ob, _ := render(o3.Prev)
	require.Equal(t, o2.Rows, ob.Rows, "Previous from the third page of orders shows the second")

	// Orders on page 3, failed mails on page 3, then back in turns: each
	// table keeps the other's page.
	o, f := render(o1.Next)
	o, f = render(f.Next)
	o, f = render(f.Next)
	o, f = render(o.Next)
	require.Equal(t, []any{first(o3), first(f3)}, []any{first(o), first(f)})
	o, f = render(f.Prev)
	require.Equal(t, []any{first(o3), first(f2)}, []any{first(o), first(f)})
	o, f = render(o.Prev)
	require.Equal(t, []any{first(o2), first(f2)}, []any{first(o), first(f)})
	o, f = render(f.Next)
	require.Equal(t, []any{first(o2), first(f3)}, []any{first(o), first(f)})
	o, f = render(f.Prev)
	o, f = render(f.Prev)
	require.Equal(t, []any{first(o2), first(f1)}, []any{first(o), first(f)})
	o, f = render(o.Prev)
	require.Equal(t, []any{first(o1), first(f1)}, []any{first(o), first(f)})
	require.Empty(t, f.Prev)

	// The way back is bounded: a Next link keeps the latest maxFailedBack
	// cursors.
	long := url.Values{}
	for range maxFailedBack + 5 {
		long.Add(failedBackParam, "1")
	}
	_, f = render(f2.Next + "&" + long.Encode())
	next, err := url.ParseQuery(f.Next)
	require.NoError(t, err)
	require.Len(t, next[failedBackParam], maxFailedBack)
}

// TestOrdersPageTrailBounded: whatever trail a URL brings (a link edited
// by hand, a crafted one), every link the page draws carries at most
// maxFailedBack cursors back: the failed mails' Previous and the orders'
// Previous and Next as well as the failed mails' Next.
func TestOrdersPageTrailBounded(t *testing.T) {
	pg := ordersPage(pagedApp(t))
	c, err := pg.Render(httptest.NewRequest("GET", "/ui/apps/orders", nil))
	require.NoError(t, err)
	f1 := c.Sections[1]
	long, err := url.ParseQuery(f1.Next)
	require.NoError(t, err)
	long.Set(ordersPageParam, fmt.Sprint(pageOrders))
	for range 10 * maxFailedBack {
		long.Add(failedBackParam, "1")
	}
	c, err = pg.Render(httptest.NewRequest("GET", "/ui/apps/orders?"+long.Encode(), nil))
	require.NoError(t, err)
	o, f := c.Sections[0], c.Sections[1]
	for name, link := range map[string]string{"orders Next": o.Next, "orders Previous": o.Prev, "failed Next": f.Next, "failed Previous": f.Prev} {
		require.NotEmpty(t, link, name)
		v, err := url.ParseQuery(link)
		require.NoError(t, err, name)
		require.LessOrEqual(t, len(v[failedBackParam]), maxFailedBack, name)
	}
}

// TestOrdersPageLinksInTheUI follows the Orders page's links as the web
// UI draws them (authentication off, on loopback): three times "Next" of
// the failed mails, then "Previous" shows the third page, then the second,
// while the orders stay on their second page.
func TestOrdersPageLinksInTheUI(t *testing.T) {
	u, err := ui.New(ui.Params{Pages: []ui.Page{ordersPage(pagedApp(t))}})
	require.NoError(t, err)
	cfg := admin.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	srv, err := admin.NewServer(cfg, nil, admin.StatusInfo{}, nil, nil, u.Routes())
	require.NoError(t, err)
	u.Bind(srv.Handler())
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)

	link := regexp.MustCompile(`<a href="([^"]*)" rel="(prev|next)">`)
	// open returns the page's two sections as HTML: the orders, the
	// failed mails.
	open := func(href string) (o, f string) {
		t.Helper()
		res, err := http.Get(hs.URL + "/ui/apps/orders" + html.UnescapeString(href))
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode, string(b))
		parts := strings.Split(string(b), "<section")
		require.Len(t, parts, 3)
		return parts[1], parts[2]
	}
	// follow returns the href of the section's link rel.
	follow := func(section, rel string) string {
		t.Helper()
		for _, m := range link.FindAllStringSubmatch(section, -1) {
			if m[2] == rel {
				return m[1]
			}
		}
		t.Fatalf("no %s link in %s", rel, section)
		return ""
	}
	o, f := open("")
	o, f = open(follow(o, "next"))
	require.Contains(t, o, "orders stored")
	rows := func(section string) string {
		return section[strings.Index(section, "<tbody>"):strings.Index(section, "</tbody>")]
	}
	secondOrders := rows(o)
	for _, want := range []string{"m20@", "m40@", "m60@"} {
		o, f = open(follow(f, "next"))
		require.Contains(t, f, "<td>"+want+"example.com</td>")
	}
	o, f = open(follow(f, "prev"))
	require.Contains(t, f, "<td>m40@example.com</td>", "Previous from the fourth page shows the third")
	o, f = open(follow(f, "prev"))
	require.Contains(t, f, "<td>m20@example.com</td>", "and then the second")
	require.Equal(t, secondOrders, rows(o), "the orders stay on their page")
}
