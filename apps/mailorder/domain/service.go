package domain

import (
	"context"
	"fmt"
	"time"
)

// Store persists orders. It is declared here, where it is used; the
// implementations live in apps/mailorder/store/sqlite and .../postgres.
type Store interface {
	// SaveOrder stores o with its lines and, in the same transaction, an
	// outbox row holding o.Confirmation(). It is idempotent on
	// (o.MessageID, o.AttachmentHash): when that order is already stored it
	// changes nothing and returns created == false and a nil error, also
	// when two callers race. Any error means nothing was stored.
	SaveOrder(ctx context.Context, o Order) (created bool, err error)
}

// Outcome is one order of a processed mail.
type Outcome struct {
	// Order is the order as stored.
	Order Order
	// Created is false when the order had been stored before (a redelivery).
	Created bool
}

// Result is what ProcessMail did with one mail.
type Result struct {
	// MessageID is the mail's Message-ID (possibly synthetic).
	MessageID string
	// From is the sender's address.
	From string
	// Subject is the mail's decoded subject.
	Subject string
	// Orders are the orders of the mail, one per order attachment, in
	// attachment order.
	Orders []Outcome
	// Notes are the audit notes of the mail (also in every order's Audit).
	Notes []string
}

// Service runs the pipeline extract → parse → validate → store → confirm for
// one mail at a time. It is safe for concurrent use when its Store is.
type Service struct {
	store Store
	cfg   Config
}

// NewService returns a Service storing into store; cfg's zero fields take
// their defaults.
func NewService(store Store, cfg Config) (*Service, error) {
	if store == nil {
		return nil, fmt.Errorf("mailorder: new service: store is nil")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mailorder: new service: limits: %w", err)
	}
	return &Service{store: store, cfg: cfg}, nil
}

// BuildOrders runs the pure steps extract, parse and validate on a raw mail
// and returns its orders, ready to store. Content problems are a
// *RejectError (errors.Is(err, ErrRejected)); a mail without any order
// attachment is rejected too. One invalid attachment rejects the whole mail.
func BuildOrders(raw []byte, cfg Config) ([]Order, *Mail, error) {
	cfg = cfg.WithDefaults()
	m, err := ParseMail(raw, cfg)
	if err != nil {
		return nil, nil, err
	}
	receivedAt := cfg.Now().UTC().Truncate(time.Microsecond) // what every store keeps
	var orders []Order
	seen := map[string]bool{}
	for _, a := range m.Attachments {
		if a.Kind == KindOther {
			continue
		}
		if seen[a.SHA256] {
			m.Notes = append(m.Notes, fmt.Sprintf("attachment %q has the same content as an earlier one; ignored", a.Name))
			continue
		}
		seen[a.SHA256] = true
		d, err := ParseAttachment(a, cfg)
		if err != nil {
			return nil, m, err
		}
		lines, total, err := Validate(d, cfg)
		if err != nil {
			return nil, m, err
		}
		o := Order{
			ID:             OrderID(m.MessageID, a.SHA256),
			Customer:       m.From,
			CustomerName:   m.FromName,
			CustomerRef:    d.CustomerRef,
			Reference:      d.Reference,
			Lines:          lines,
			Total:          total,
			MessageID:      m.MessageID,
			Subject:        m.Subject,
			AttachmentName: a.Name,
			AttachmentHash: a.SHA256,
			MailDate:       m.Date,
			ReceivedAt:     receivedAt,
		}
		o.Audit = append(append([]string(nil), d.Notes...), m.Notes...)
		orders = append(orders, o)
	}
	if len(orders) == 0 {
		reason := "mail has no order attachment (expected a .csv or .json file)"
		if n := len(m.Attachments); n > 0 {
			reason = fmt.Sprintf("mail has no order attachment among its %d attachment(s) (expected a .csv or .json file)", n)
		}
		return nil, m, reject("", 0, "", reason)
	}
	// Notes added while walking later attachments belong to every order.
	for i := range orders {
		orders[i].Audit = dedupe(orders[i].Audit, m.Notes)
	}
	return orders, m, nil
}

func dedupe(a, b []string) []string {
	seen := make(map[string]bool, len(a)+len(b))
	out := make([]string, 0, len(a)+len(b))
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// ProcessMail runs the whole pipeline on the raw RFC 5322 bytes of one mail
// and stores one order per order attachment. A content problem returns a
// *RejectError (errors.Is(err, ErrRejected): permanent, do not retry); any
// other error (store failure, ctx ended) is worth a retry, and a retry is
// safe because SaveOrder is idempotent. On error, Result holds the orders
// stored before the failure.
func (s *Service) ProcessMail(ctx context.Context, raw []byte) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("mailorder: process mail: %w", err)
	}
	orders, m, err := BuildOrders(raw, s.cfg)
	res := Result{}
	if m != nil {
		res.MessageID, res.From, res.Subject, res.Notes = m.MessageID, m.From, m.Subject, m.Notes
	}
	if err != nil {
		return res, err
	}
	for _, o := range orders {
		created, err := s.store.SaveOrder(ctx, o)
		if err != nil {
			return res, fmt.Errorf("mailorder: save order %s of message %q: %w", o.ID, o.MessageID, err)
		}
		res.Orders = append(res.Orders, Outcome{Order: o, Created: created})
	}
	return res, nil
}
