package shipments

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/plba/plba/platform/task"
)

// Ledger counts the notices sent since the last digest. It lives in the
// process: a real application keeps it in its database.
type Ledger struct {
	mu   sync.Mutex
	sent []string // shipment ids
}

// Add records a notice sent for shipment.
func (l *Ledger) Add(shipment string) {
	l.mu.Lock()
	l.sent = append(l.sent, shipment)
	l.mu.Unlock()
}

// Take returns the shipments recorded so far and forgets them.
func (l *Ledger) Take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.sent
	l.sent = nil
	return out
}

// Restore puts back what Take returned, when the digest failed.
func (l *Ledger) Restore(ids []string) {
	l.mu.Lock()
	l.sent = append(ids, l.sent...)
	l.mu.Unlock()
}

// handlers are the application's task handlers.
type handlers struct {
	cfg      Config
	notifier *Notifier
	ledger   *Ledger
	enqueuer task.Enqueuer
	now      func() time.Time
}

// notice sends the shipping notice, then schedules the feedback request.
// The feedback task's key makes a redelivered notice schedule it once.
func (h *handlers) notice(ctx context.Context, a NoticeArgs) error {
	t, _ := task.FromContext(ctx)
	err := h.notifier.Send(ctx, Message{
		To:      a.Email,
		Subject: fmt.Sprintf("Your order %s is on its way", a.Order),
		Body:    fmt.Sprintf("%s tracking number %s (notice %s, attempt %d).", a.Carrier, a.Tracking, t.ID, t.Attempt),
	})
	if err != nil {
		return err
	}
	h.ledger.Add(a.Shipment)
	fb, err := Feedback.New(FeedbackArgs{Shipment: a.Shipment, Email: a.Email})
	if err != nil {
		return task.Permanent(err)
	}
	fb.Key = "feedback/" + a.Shipment
	fb.NotBefore = h.now().Add(h.cfg.FeedbackAfter)
	return h.enqueuer.Enqueue(ctx, fb)
}

// feedback asks the customer how the delivery went.
func (h *handlers) feedback(ctx context.Context, a FeedbackArgs) error {
	return h.notifier.Send(ctx, Message{
		To:      a.Email,
		Subject: "How did your delivery go?",
		Body:    fmt.Sprintf("Tell us about shipment %s.", a.Shipment),
	})
}

// digest sends the summary of the notices sent since the last one.
func (h *handlers) digest(ctx context.Context, a DigestArgs) error {
	ids := h.ledger.Take()
	err := h.notifier.Send(ctx, Message{
		To:      h.cfg.Digest.To,
		Subject: "Shipping notices until " + a.Period,
		Body:    fmt.Sprintf("%d notice(s) sent: %v", len(ids), ids),
	})
	if err != nil {
		h.ledger.Restore(ids)
	}
	return err
}
