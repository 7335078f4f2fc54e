package mailorder

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"github.com/plba/plba/apps/mailorder/domain"
	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/platform/task"
)

// Handler processes one order mail task (payload: the raw mail from the
// IMAP source): it runs the whole pipeline, extract → parse → validate →
// store → confirm, in one task. One task per mail keeps the mailbox honest:
// the source moves the mail only when every order of it is stored (or when
// it is rejected), which a fan-out into one task per attachment could not
// tell. Re-running a mail is safe: the store is idempotent per
// (message id, attachment hash).
type Handler struct {
	svc *domain.Service
	log *zap.Logger
}

// NewHandler returns the handler over svc. A nil log discards logs.
func NewHandler(svc *domain.Service, log *zap.Logger) *Handler {
	if log == nil {
		log = zap.NewNop()
	}
	return &Handler{svc: svc, log: log}
}

// rejectedMarker is in the dead-letter reason of every mail the domain
// rejected: the status does not look for its orders.
const rejectedMarker = " rejected: "

// rejectedReason reports whether a dead letter's reason is that of a mail
// the domain rejected: it starts as Handle words it ("mail <"; any other
// failure's starts "mailorder: ") and has rejectedMarker. The Message-ID
// is the sender's, so the marker alone could be in another reason.
func rejectedReason(reason string) bool {
	return strings.HasPrefix(reason, "mail <") && strings.Contains(reason, rejectedMarker)
}

// Handle implements task.Handler. A mail the domain rejects (no order
// attachment, invalid content) is a permanent failure whose reason names
// the mail and what is wrong with it; it goes to the dead letter and the
// source moves it to the failed folder. Any other failure is retried.
func (h *Handler) Handle(ctx context.Context, t *task.Task) error {
	if reason := t.Header(task.HeaderRejected); reason != "" {
		// A stand-in (task.Rejected) for a mail the queue refused, one
		// too large to fetch, or one the server refuses to return: the
		// pool dead-letters it without a handler; should one run it, the
		// reason stays the same.
		return task.Permanent(fmt.Errorf("mail <%s> not handled: %s", domain.CleanText(t.Header(imap.HeaderMessageID)), reason))
	}
	res, err := h.svc.ProcessMail(ctx, t.Payload)
	if err != nil {
		id := res.MessageID
		if id == "" { // the server's envelope: shown as a mail's text is
			id = domain.CleanText(t.Header(imap.HeaderMessageID))
		}
		if errors.Is(err, domain.ErrRejected) {
			var rej *domain.RejectError
			reason := err.Error()
			from, subject := res.From, res.Subject
			if errors.As(err, &rej) {
				reason = rej.Reason
				if from == "" && subject == "" { // rejected before the mail was parsed whole
					from, subject = rej.From, rej.Subject
					if res.MessageID == "" && rej.MessageID != "" {
						id = rej.MessageID
					}
				}
			}
			h.log.Debug("order mail rejected", zap.String("message_id", id), zap.String("from", from),
				zap.String("uid", t.Header(imap.HeaderUID)), zap.String("reason", reason))
			return task.Permanent(fmt.Errorf("mail <%s> from %q (subject %q)"+rejectedMarker+"%s", id, from, subject, reason))
		}
		return fmt.Errorf("mailorder: mail <%s>: %w", id, err)
	}
	for _, o := range res.Orders {
		h.log.Debug("order stored", zap.String("order", o.Order.ID), zap.String("message_id", res.MessageID),
			zap.String("customer", o.Order.Customer), zap.Int("lines", len(o.Order.Lines)),
			zap.Stringer("total", o.Order.Total), zap.Bool("created", o.Created))
	}
	return nil
}
