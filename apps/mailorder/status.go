package mailorder

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/plba/plba/apps/mailorder/domain"
	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// StatusPath is the admin endpoint of the application's status.
const StatusPath = "/admin/v1/mailorder"

// Status is what GET /admin/v1/mailorder shows: the mailbox, the orders
// and the mails that failed, with their reasons.
type Status struct {
	// Mailbox is the IMAP source's state and counters.
	Mailbox imap.Status `json:"mailbox"`
	// Queue is the queue of the mail tasks.
	Queue string `json:"queue"`
	// Store is the store driver.
	Store string `json:"store"`
	// Orders is the number of stored orders.
	Orders int `json:"orders"`
	// RecentOrders are the newest orders (at most 20).
	RecentOrders []OrderSummary `json:"recent_orders"`
	// FailedMails are the mails in the dead letter of Queue (of the oldest
	// 200 of Kind, read without their payloads; a shared queue's dead
	// letters of other kinds are not mails),
	// oldest first, each with the reason it failed, except those resolved.
	FailedMails []FailedMail `json:"failed_mails"`
	// FailedMailsMore says the queue holds more dead letters of Kind
	// than the 200 looked at: FailedMails and ResolvedMails are not all
	// of them (the queue's page in the web UI lists every one).
	FailedMailsMore bool `json:"failed_mails_more,omitempty"`
	// ResolvedMails counts the dead letters (of the 200 looked at) whose
	// mail a later run stored: every order of the mail is in the store (the
	// mail was dead-lettered, say, while the database was down, and
	// emitted again after a restart). They are not failed.
	ResolvedMails int `json:"resolved_mails"`
	// Demo describes the embedded demo mailbox, when it runs.
	Demo *DemoStatus `json:"demo,omitempty"`
}

// OrderSummary is one order in Status.
type OrderSummary struct {
	ID         string    `json:"id"`
	MessageID  string    `json:"message_id"`
	Customer   string    `json:"customer"`
	Attachment string    `json:"attachment"`
	Lines      int       `json:"lines"`
	Total      string    `json:"total"`
	ReceivedAt time.Time `json:"received_at"`
}

// FailedMail is one dead-lettered mail in Status.
type FailedMail struct {
	MessageID string    `json:"message_id"`
	UID       string    `json:"uid"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
}

// DemoStatus is the demo part of Status.
type DemoStatus struct {
	// IMAP is the embedded server's address.
	IMAP string `json:"imap"`
	// Username is the demo account (the password is in the config).
	Username string `json:"username"`
	// Seeded is how many sample mails were put in the INBOX at start, and
	// how many of them are valid orders.
	Seeded int `json:"seeded"`
	Valid  int `json:"valid"`
	// Folders counts the messages in INBOX, Processed and Failed.
	Folders map[string]int `json:"folders"`
}

// App is the running application's parts, for the status endpoint, tests
// and tools.
type App struct {
	cfg     Config
	store   Store
	src     *imap.Source
	backend deadLister // nil: no dead letters to show
	demo    *Demo
}

// deadLister is the part of the queue backend the status reads: a page of
// dead letters without their payloads, and one dead letter whole.
type deadLister interface {
	QueryDead(ctx context.Context, queue string, q queue.DeadQuery) (queue.DeadPage, error)
	GetDead(ctx context.Context, queue, id string) (queue.DeadLetter, error)
}

// statusDeadLimit is how many dead letters the status looks at.
const statusDeadLimit = 200

// Store returns the order store.
func (a *App) Store() Store { return a.store }

// Source returns the IMAP source.
func (a *App) Source() *imap.Source { return a.src }

// Demo returns the demo mailbox, or nil when the demo is off.
func (a *App) Demo() *Demo { return a.demo }

// Status collects the application's status.
func (a *App) Status(ctx context.Context) (Status, error) {
	st := Status{Mailbox: a.src.Status(), Queue: a.cfg.Queue, Store: a.cfg.Store.Driver,
		RecentOrders: []OrderSummary{}, FailedMails: []FailedMail{}}
	n, err := a.store.Count(ctx)
	if err != nil {
		return st, fmt.Errorf("mailorder: status: %w", err)
	}
	st.Orders = n
	recent, err := a.store.List(ctx, 20)
	if err != nil {
		return st, fmt.Errorf("mailorder: status: %w", err)
	}
	for _, o := range recent {
		st.RecentOrders = append(st.RecentOrders, OrderSummary{
			ID: o.ID, MessageID: o.MessageID, Customer: o.Customer, Attachment: o.AttachmentName,
			Lines: len(o.Lines), Total: o.Total.String(), ReceivedAt: o.ReceivedAt,
		})
	}
	if a.backend != nil {
		page, err := a.backend.QueryDead(ctx, a.cfg.Queue, queue.DeadQuery{Kind: Kind, Limit: statusDeadLimit})
		if err != nil {
			return st, fmt.Errorf("mailorder: status: dead letters: %w", err)
		}
		st.FailedMailsMore = page.Next != ""
		for _, d := range page.Items {
			if ok, err := a.resolved(ctx, d); err != nil {
				return st, fmt.Errorf("mailorder: status: dead letters: %w", err)
			} else if ok {
				st.ResolvedMails++
				continue
			}
			st.FailedMails = append(st.FailedMails, FailedMail{
				MessageID: domain.CleanText(d.Task.Header(imap.HeaderMessageID)), UID: d.Task.Header(imap.HeaderUID),
				Reason: d.Reason, At: d.At,
			})
		}
	}
	if a.demo != nil {
		ds := &DemoStatus{IMAP: a.demo.srv.Addr(), Username: a.cfg.Demo.Username,
			Seeded: a.demo.stats.Mails, Valid: a.demo.stats.Valid, Folders: map[string]int{}}
		for _, f := range []string{a.cfg.Mailbox.Mailbox, deref(a.src.Config().OnSuccess.MoveTo), deref(a.src.Config().OnFailure.MoveTo)} {
			if f == "" {
				continue
			}
			if msgs, err := a.demo.srv.Messages(ctx, f); err == nil {
				ds.Folders[f] = len(msgs)
			}
		}
		st.Demo = ds
	}
	return st, nil
}

// resolved reports whether the mail of dead letter d (listed without its
// payload) was stored by a later run. Only a dead letter that could have
// been resolved is read whole: one with a payload that the domain did not
// reject (a rejected mail is rejected again; a database outage is not).
func (a *App) resolved(ctx context.Context, d queue.DeadLetter) (bool, error) {
	if d.Task == nil || d.PayloadSize == 0 || rejectedReason(d.Reason) {
		return false, nil
	}
	whole, err := a.backend.GetDead(ctx, a.cfg.Queue, d.Task.ID)
	if errors.Is(err, queue.ErrNotFound) {
		return false, nil // re-driven or purged since the page was read
	}
	if err != nil {
		return false, err
	}
	return a.stored(ctx, whole.Task)
}

// stored reports whether every order of the mail behind t is in the store:
// a later run stored it, so its dead letter is resolved. A mail that
// cannot be parsed into orders (a rejected mail, a payload-less stand-in)
// is not.
func (a *App) stored(ctx context.Context, t *task.Task) (bool, error) {
	if t == nil || len(t.Payload) == 0 {
		return false, nil
	}
	orders, _, err := domain.BuildOrders(t.Payload, a.cfg.Limits)
	if err != nil || len(orders) == 0 {
		return false, nil
	}
	for _, o := range orders {
		if _, err := a.store.Get(ctx, o.ID); errors.Is(err, domain.ErrOrderNotFound) {
			return false, nil
		} else if err != nil {
			return false, err
		}
	}
	return true, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// statusRoute serves Status as JSON on GET StatusPath.
func statusRoute(a *App) admin.Route {
	return admin.Route{Pattern: "GET " + StatusPath, Page: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		st, err := a.Status(ctx)
		if err != nil {
			admin.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		admin.WriteJSON(w, http.StatusOK, st)
	})}
}
