package mailorder

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/plba/plba/apps/mailorder/domain"
	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/platform/admin/ui"
	"github.com/plba/plba/platform/queue"
)

// The Orders page of the web UI: how many rows a page shows, and how far
// back the orders go (the store lists the newest orders; a page further
// back than this is not offered).
const (
	pageOrders      = 20
	pageFailed      = 20
	maxOrdersPaged  = 500
	ordersPageParam = "orders"
	failedPageParam = "failed"
)

// The backend's dead-letter cursor only goes forward, so the failed
// mails' links carry the way back: failedBackParam repeats, oldest first,
// the cursors of the pages between the first and the current one.
// "Previous" returns to the last of them (or to the first page), "Next"
// adds the current one. The trail keeps the latest maxFailedBack pages; a
// "Previous" past them lands on the first page.
const (
	failedBackParam = "failedback"
	maxFailedBack   = 50
)

// A failed mail's state on the Orders page: still failed, or stored by a
// later run (its dead letter is resolved, as the status says).
const (
	stateFailed   = "failed"
	stateResolved = "stored by a later run"
)

// deadQuerier is the paged dead-letter query of the queue backend,
// without payloads.
type deadQuerier interface {
	QueryDead(ctx context.Context, queue string, q queue.DeadQuery) (queue.DeadPage, error)
}

// ordersPage is the application's page in the admin web UI: the newest
// orders from the store, paged, and the failed mails of the queue's dead
// letters with their reasons, paged through the backend's cursor
// (without payloads), each marked failed or stored by a later run.
func ordersPage(a *App) ui.Page {
	return ui.Page{Slug: "orders", Title: "Orders", Render: a.renderOrders}
}

func (a *App) renderOrders(r *http.Request) (ui.Content, error) {
	ctx := r.Context()
	q := r.URL.Query()
	// Every link below carries the failed mails' trail back on: none on
	// their first page, and at most the latest maxFailedBack cursors
	// whatever the URL brought.
	if q.Get(failedPageParam) == "" {
		q.Del(failedBackParam)
	} else if back := q[failedBackParam]; len(back) > maxFailedBack {
		q[failedBackParam] = back[len(back)-maxFailedBack:]
	}
	off, _ := strconv.Atoi(q.Get(ordersPageParam))
	off = min(max(off, 0), maxOrdersPaged)
	total, err := a.store.Count(ctx)
	if err != nil {
		return ui.Content{}, fmt.Errorf("mailorder: orders: %w", err)
	}
	list, err := a.store.List(ctx, off+pageOrders+1)
	if err != nil {
		return ui.Content{}, fmt.Errorf("mailorder: orders: %w", err)
	}
	orders := ui.Section{Title: "Recent orders", Note: fmt.Sprintf("%d orders stored (%s), newest first.", total, a.cfg.Store.Driver),
		Columns: []string{"Order", "Customer", "Lines", "Total", "Attachment", "Message-ID", "Received"},
		Empty:   "No orders yet."}
	if total > maxOrdersPaged {
		orders.Note += fmt.Sprintf(" The pages list the newest %d; older ones are not shown here.", maxOrdersPaged)
	}
	for i, o := range list {
		if i < off {
			continue
		}
		if i >= off+pageOrders {
			if off+pageOrders < maxOrdersPaged {
				orders.Next = with(q, ordersPageParam, strconv.Itoa(off+pageOrders))
			}
			break
		}
		orders.Rows = append(orders.Rows, []any{o.ID, o.Customer, len(o.Lines), o.Total.String(), o.AttachmentName, o.MessageID, o.ReceivedAt})
	}
	if off > 0 {
		orders.Prev = with(q, ordersPageParam, strconv.Itoa(max(0, off-pageOrders)))
	}
	failed := ui.Section{Title: "Failed mails", Columns: []string{"Message-ID", "UID", "Reason", "Attempts", "Failed", "State"},
		Empty: "No failed mails."}
	dq, ok := a.backend.(deadQuerier)
	if !ok {
		failed.Note = "The queue backend does not list dead letters."
		return ui.Content{Sections: []ui.Section{orders, failed}}, nil
	}
	cur := q.Get(failedPageParam)
	page, err := dq.QueryDead(ctx, a.cfg.Queue, queue.DeadQuery{Kind: Kind, Cursor: cur, Limit: pageFailed})
	if err != nil {
		return ui.Content{}, fmt.Errorf("mailorder: failed mails: %w", err)
	}
	failed.Note = fmt.Sprintf("Dead letters of queue %s, oldest first; re-drive or purge them on the queue's page.", a.cfg.Queue)
	for _, d := range page.Items {
		state := stateFailed
		if ok, err := a.resolved(ctx, d); err != nil {
			return ui.Content{}, fmt.Errorf("mailorder: failed mails: %w", err)
		} else if ok {
			state = stateResolved
		}
		failed.Rows = append(failed.Rows, []any{domain.CleanText(d.Task.Header(imap.HeaderMessageID)), d.Task.Header(imap.HeaderUID),
			d.Reason, d.Task.Attempt, d.At, state})
	}
	back := q[failedBackParam] // none on the first page (above)
	if page.Next != "" {
		fwd := back
		if cur != "" {
			fwd = append(back[:len(back):len(back)], cur)
		}
		failed.Next = withAll(q, failedPageParam, page.Next, fwd[max(0, len(fwd)-maxFailedBack):])
	}
	if cur != "" {
		prev := ""
		if len(back) > 0 {
			prev, back = back[len(back)-1], back[:len(back)-1]
		}
		failed.Prev = withAll(q, failedPageParam, prev, back)
	}
	return ui.Content{Sections: []ui.Section{orders, failed}}, nil
}

// withAll is with for the failed mails' cursor: key set to v and
// failedBackParam to the trail back (both removed when empty).
func withAll(q url.Values, key, v string, back []string) string {
	out := url.Values{}
	for k, vs := range q {
		out[k] = vs
	}
	out.Del(failedBackParam)
	for _, c := range back {
		if c != "" {
			out.Add(failedBackParam, c)
		}
	}
	return with(out, key, v)
}

// with returns q's encoding with key set to v (removed when empty).
func with(q url.Values, key, v string) string {
	out := url.Values{}
	for k, vs := range q {
		out[k] = vs
	}
	if v == "" {
		out.Del(key)
	} else {
		out.Set(key, v)
	}
	if len(out) == 0 {
		return key + "="
	}
	return out.Encode()
}
