// Package storetest is the conformance suite every mailorder order store
// passes: SQLite and PostgreSQL run the same cases, so they are
// interchangeable. Call Run from the store's own tests.
package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/domain"
)

// Store is what a mailorder order store offers: domain.Store plus reads for
// tests and the status page, the outbox of confirmations, a health check and
// Close.
type Store interface {
	domain.Store
	// Get returns the order with its lines, or an error matching
	// domain.ErrOrderNotFound.
	Get(ctx context.Context, id string) (domain.Order, error)
	// List returns up to limit orders with their lines, newest ReceivedAt
	// first (ties by id).
	List(ctx context.Context, limit int) ([]domain.Order, error)
	// Count returns the number of stored orders.
	Count(ctx context.Context) (int, error)
	// PendingConfirmations returns up to limit unsent confirmations, oldest
	// first.
	PendingConfirmations(ctx context.Context, limit int) ([]domain.Confirmation, error)
	// MarkConfirmationSent records that the confirmation of an order was
	// sent; unknown or already sent ones match domain.ErrOrderNotFound.
	MarkConfirmationSent(ctx context.Context, orderID string) error
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// NewFunc opens a fresh, empty store for one test; the suite closes it, the
// function registers any further clean-up with t.Cleanup.
type NewFunc func(t *testing.T) Store

// MakeOrder returns a valid order numbered n with lines lines, as the
// pipeline would build it (deterministic for n).
func MakeOrder(n, lines int) domain.Order {
	hash := fmt.Sprintf("%064x", n+1)
	o := domain.Order{
		Customer:       fmt.Sprintf("customer%d@example.com", n%7),
		CustomerName:   "Kunde Müller",
		CustomerRef:    fmt.Sprintf("C-%d", n%7),
		Reference:      fmt.Sprintf("PO-%d", n),
		MessageID:      fmt.Sprintf("msg-%d@example.com", n),
		Subject:        "Bestellung Nr. " + fmt.Sprint(n),
		AttachmentName: fmt.Sprintf("order-%d.csv", n),
		AttachmentHash: hash,
		Audit:          []string{`attachment read as CSV with separator ";"`, `ignored attachment "logo.png"`},
		MailDate:       time.Date(2025, 1, 6, 10, 0, n%60, 0, time.UTC),
		ReceivedAt:     time.Date(2025, 1, 6, 10, 1, 0, 0, time.UTC).Add(time.Duration(n) * time.Microsecond * 1000),
	}
	o.ID = domain.OrderID(o.MessageID, o.AttachmentHash)
	for i := 0; i < lines; i++ {
		l := domain.Line{No: i + 1, SourceLine: i + 2, SKU: fmt.Sprintf("SKU-%04d", i), Quantity: int64(i%5 + 1), UnitPrice: domain.Money(199 + i)}
		l.Total = l.UnitPrice * domain.Money(l.Quantity)
		o.Total += l.Total
		o.Lines = append(o.Lines, l)
	}
	return o
}

// HostileMail is a valid order mail whose text is what a careless or
// hostile sender writes: raw 8-bit (Latin-1) bytes in its Subject,
// Message-ID and file name, a NUL and a control character in RFC 2047
// words of its sender's name and subject, and NULs in its JSON order's
// customer and reference. It holds two orders (a CSV and a JSON one).
const HostileMail = "From: =?utf-8?q?M=C3=BCller=00=07?= <buyer@example.com>\r\n" +
	"Subject: Bestellung f\xfcr =?iso-8859-1?q?K=F6ln=00?=\r\n" +
	"Message-ID: <bestellung-\xfc-1@example.com>\r\n" +
	"Date: Mon, 6 Jan 2025 10:00:00 +0100\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=b1\r\n" +
	"\r\n" +
	"--b1\r\n" +
	"Content-Type: text/csv\r\n" +
	"Content-Disposition: attachment; filename=\"bestellung-k\xf6ln.csv\"\r\n" +
	"\r\n" +
	"sku,qty,unit_price\r\nAB-1,2,3.50\r\n" +
	"--b1\r\n" +
	"Content-Type: application/json\r\n" +
	"Content-Disposition: attachment; filename=\"order.json\"\r\n" +
	"\r\n" +
	`{"customer":"C-\u0000-1","reference":"PO\u0000\u001b[31m","lines":[{"sku":"CD-2","qty":1,"unit_price":"9.99"}]}` + "\r\n" +
	"--b1--\r\n"

// LongMessageIDMail is a valid order mail (one CSV order) whose
// Message-ID is n bytes of text that does not compress (a hostile or
// broken sender's): longer than a database index entry may be.
func LongMessageIDMail(n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	id := make([]byte, n)
	x := uint32(2463534242)
	for i := range id {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		id[i] = alphabet[x%uint32(len(alphabet))]
	}
	return []byte("From: buyer@example.com\r\nMessage-ID: <" + string(id) + "@example.com>\r\n" +
		"Content-Type: text/csv; name=o.csv\r\n\r\nsku,qty,price\r\nAB-1,2,3.50\r\n")
}

// Run runs the conformance suite against stores made by newStore.
func Run(t *testing.T, newStore NewFunc) {
	t.Helper()
	open := func(t *testing.T) Store {
		t.Helper()
		s := newStore(t)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	}
	ctx := context.Background()

	t.Run("SaveAndGet", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		require.NoError(t, s.Ping(ctx))
		o := MakeOrder(1, 3)
		o.MailDate = time.Date(2025, 1, 6, 10, 0, 0, 0, time.FixedZone("CET", 3600))
		created, err := s.SaveOrder(ctx, o)
		require.NoError(t, err)
		require.True(t, created)
		got, err := s.Get(ctx, o.ID)
		require.NoError(t, err)
		RequireEqualOrders(t, o, got)
		n, err := s.Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})

	t.Run("GetUnknown", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		_, err := s.Get(ctx, "ord_missing")
		require.ErrorIs(t, err, domain.ErrOrderNotFound)
	})

	t.Run("ZeroTimesAndEmptyAudit", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		o := MakeOrder(2, 1)
		o.MailDate, o.Audit, o.CustomerName, o.CustomerRef, o.Reference, o.Subject = time.Time{}, nil, "", "", "", ""
		_, err := s.SaveOrder(ctx, o)
		require.NoError(t, err)
		got, err := s.Get(ctx, o.ID)
		require.NoError(t, err)
		RequireEqualOrders(t, o, got)
	})

	t.Run("Idempotent", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		o := MakeOrder(3, 2)
		created, err := s.SaveOrder(ctx, o)
		require.NoError(t, err)
		require.True(t, created)
		// A redelivery processed later: same key, other receive time.
		again := o
		again.ReceivedAt = o.ReceivedAt.Add(time.Hour)
		created, err = s.SaveOrder(ctx, again)
		require.NoError(t, err)
		require.False(t, created)
		got, err := s.Get(ctx, o.ID)
		require.NoError(t, err)
		require.True(t, o.ReceivedAt.Equal(got.ReceivedAt), "first save wins")
		n, err := s.Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		pending, err := s.PendingConfirmations(ctx, 10)
		require.NoError(t, err)
		require.Len(t, pending, 1, "one confirmation, not two")
	})

	t.Run("IdempotentUnderConcurrency", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		for round := 0; round < 5; round++ {
			o := MakeOrder(100+round, 20)
			const racers = 4
			var wg sync.WaitGroup
			results := make([]bool, racers)
			errs := make([]error, racers)
			for i := 0; i < racers; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], errs[i] = s.SaveOrder(ctx, o)
				}()
			}
			wg.Wait()
			created := 0
			for i := 0; i < racers; i++ {
				require.NoError(t, errs[i])
				if results[i] {
					created++
				}
			}
			require.Equal(t, 1, created, "exactly one racer creates the order")
		}
		n, err := s.Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 5, n)
		pending, err := s.PendingConfirmations(ctx, 100)
		require.NoError(t, err)
		require.Len(t, pending, 5)
	})

	t.Run("SameMessageTwoAttachments", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		a := MakeOrder(4, 1)
		b := MakeOrder(5, 1)
		b.MessageID = a.MessageID
		b.ID = domain.OrderID(b.MessageID, b.AttachmentHash)
		for _, o := range []domain.Order{a, b} {
			created, err := s.SaveOrder(ctx, o)
			require.NoError(t, err)
			require.True(t, created)
		}
		n, err := s.Count(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, n)
	})

	t.Run("ListNewestFirst", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		for i := 0; i < 5; i++ {
			_, err := s.SaveOrder(ctx, MakeOrder(10+i, i+1))
			require.NoError(t, err)
		}
		got, err := s.List(ctx, 3)
		require.NoError(t, err)
		require.Len(t, got, 3)
		for i, o := range got {
			RequireEqualOrders(t, MakeOrder(14-i, 5-i), o)
		}
		all, err := s.List(ctx, 100)
		require.NoError(t, err)
		require.Len(t, all, 5)
	})

	t.Run("Outbox", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		var orders []domain.Order
		for i := 0; i < 3; i++ {
			o := MakeOrder(20+i, 2)
			orders = append(orders, o)
			_, err := s.SaveOrder(ctx, o)
			require.NoError(t, err)
		}
		pending, err := s.PendingConfirmations(ctx, 10)
		require.NoError(t, err)
		require.Equal(t, []domain.Confirmation{orders[0].Confirmation(), orders[1].Confirmation(), orders[2].Confirmation()}, pending)
		require.NoError(t, s.MarkConfirmationSent(ctx, orders[1].ID))
		require.ErrorIs(t, s.MarkConfirmationSent(ctx, orders[1].ID), domain.ErrOrderNotFound, "already sent")
		require.ErrorIs(t, s.MarkConfirmationSent(ctx, "ord_missing"), domain.ErrOrderNotFound)
		pending, err = s.PendingConfirmations(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, []domain.Confirmation{orders[0].Confirmation()}, pending)
		pending, err = s.PendingConfirmations(ctx, 10)
		require.NoError(t, err)
		require.Len(t, pending, 2)
	})

	t.Run("AtomicOnFailure", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		o := MakeOrder(30, 3)
		o.Lines[2].No = o.Lines[1].No // duplicate line key: the lines insert fails
		_, err := s.SaveOrder(ctx, o)
		require.Error(t, err)
		n, err := s.Count(ctx)
		require.NoError(t, err)
		require.Zero(t, n, "no order without its lines")
		pending, err := s.PendingConfirmations(ctx, 10)
		require.NoError(t, err)
		require.Empty(t, pending, "no confirmation without its order")
		// The same order, fixed, can be saved afterwards.
		_, err = s.SaveOrder(ctx, MakeOrder(30, 3))
		require.NoError(t, err)
	})

	t.Run("CanceledContext", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := s.SaveOrder(cctx, MakeOrder(40, 1))
		require.ErrorIs(t, err, context.Canceled)
		n, err := s.Count(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
	})

	t.Run("OrdersOfAMailWithHostileText", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		orders, _, err := domain.BuildOrders([]byte(HostileMail), domain.Config{})
		require.NoError(t, err)
		require.Len(t, orders, 2)
		for _, o := range orders {
			created, err := s.SaveOrder(ctx, o)
			require.NoError(t, err, "a valid order whatever bytes its mail's headers hold")
			require.True(t, created)
			got, err := s.Get(ctx, o.ID)
			require.NoError(t, err)
			RequireEqualOrders(t, o, got)
		}
		pending, err := s.PendingConfirmations(ctx, 10)
		require.NoError(t, err)
		require.Equal(t, []domain.Confirmation{orders[0].Confirmation(), orders[1].Confirmation()}, pending)
	})

	t.Run("OrderOfAMailWithALongMessageID", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		orders, _, err := domain.BuildOrders(LongMessageIDMail(8000), domain.Config{})
		require.NoError(t, err)
		require.Len(t, orders, 1)
		created, err := s.SaveOrder(ctx, orders[0])
		require.NoError(t, err, "a valid order whatever the length of its mail's Message-ID")
		require.True(t, created)
		got, err := s.Get(ctx, orders[0].ID)
		require.NoError(t, err)
		RequireEqualOrders(t, orders[0], got)
		created, err = s.SaveOrder(ctx, orders[0])
		require.NoError(t, err)
		require.False(t, created, "stored once")
	})

	t.Run("ManyLines", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		o := MakeOrder(50, 500)
		_, err := s.SaveOrder(ctx, o)
		require.NoError(t, err)
		got, err := s.Get(ctx, o.ID)
		require.NoError(t, err)
		RequireEqualOrders(t, o, got)
	})
}

// RequireEqualOrders checks that got is want as read back from a store:
// times are compared as instants, nil and empty audits are equal.
func RequireEqualOrders(t testing.TB, want, got domain.Order) {
	t.Helper()
	require.True(t, want.ReceivedAt.Equal(got.ReceivedAt), "received_at: want %v got %v", want.ReceivedAt, got.ReceivedAt)
	require.True(t, want.MailDate.Equal(got.MailDate), "mail_date: want %v got %v", want.MailDate, got.MailDate)
	if len(want.Audit) == 0 {
		require.Empty(t, got.Audit)
	} else {
		require.Equal(t, want.Audit, got.Audit)
	}
	want.ReceivedAt, got.ReceivedAt, want.MailDate, got.MailDate = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	want.Audit, got.Audit = nil, nil
	require.Equal(t, want, got)
}
