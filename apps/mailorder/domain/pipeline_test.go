package domain_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/domain"
)

// memStore is an in-memory domain.Store for tests.
type memStore struct {
	mu     sync.Mutex
	orders map[string]domain.Order
	outbox []domain.Confirmation
	fail   error
}

func newMemStore() *memStore { return &memStore{orders: map[string]domain.Order{}} }

func (s *memStore) SaveOrder(_ context.Context, o domain.Order) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return false, s.fail
	}
	key := o.MessageID + "\x00" + o.AttachmentHash
	if _, ok := s.orders[key]; ok {
		return false, nil
	}
	s.orders[key] = o
	s.outbox = append(s.outbox, o.Confirmation())
	return true, nil
}

var fixedNow = time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)

func testConfig() domain.Config {
	return domain.Config{Now: func() time.Time { return fixedNow }}
}

func readEML(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

type wantLine struct {
	sku   string
	qty   int64
	price domain.Money
}

type wantOrder struct {
	attachment string
	lines      []wantLine
	total      domain.Money
	reference  string
	customer   string
	audit      string // substring expected in the audit
}

func TestProcessMail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file      string
		subject   string
		from      string
		orders    []wantOrder
		rejectSub []string // substrings of the reason when rejected
	}{
		{
			file: "mixed_csv.eml", subject: "Order 4711", from: "alice@example.com",
			orders: []wantOrder{{attachment: "order.csv", total: 2899, audit: `separator ","`,
				lines: []wantLine{{"A-100", 2, 1250}, {"B-200", 1, 399}}}},
		},
		{
			file: "nested_base64.eml", subject: "Bestellung Müller", from: "bob@example.org",
			orders: []wantOrder{{attachment: "Bestellung Müller.csv", total: 750 + 12500, audit: `separator ";"`,
				lines: []wantLine{{"X-300", 5, 150}, {"Y-400", 10, 1250}}}},
		},
		{
			file: "qp_inline.eml", subject: "Bestellung für März", from: "carol@example.net",
			orders: []wantOrder{{attachment: "März.csv", total: 5970, audit: `ignored columns "description"`,
				lines: []wantLine{{"C-500", 3, 1990}, {"C-501", 1, 0}}}},
		},
		{
			file: "json.eml", subject: "JSON order", from: "dave@example.com",
			orders: []wantOrder{{attachment: "order.json", total: 1000 + 100000, reference: "PO-77", customer: "C-1001", audit: "as JSON",
				lines: []wantLine{{"J-100", 4, 250}, {"J-200", 1, 100000}}}},
		},
		{
			file: "unknown_type.eml", subject: "order with picture", from: "grace@example.com",
			orders: []wantOrder{{attachment: "order.csv", total: 999, audit: `ignored attachment "photo.jpg" (image/jpeg)`,
				lines: []wantLine{{"G-100", 1, 999}}}},
		},
		{
			file: "two_orders.eml", subject: "two orders", from: "heidi@example.com",
			orders: []wantOrder{
				{attachment: "berlin.csv", total: 100, lines: []wantLine{{"H-100", 1, 100}}},
				{attachment: "hamburg.json", total: 100, lines: []wantLine{{"H-200", 2, 50}}},
			},
		},
		{file: "no_attachment.eml", rejectSub: []string{"no order attachment"}},
		{file: "bad_quantity.eml", rejectSub: []string{`attachment "order.csv"`, "line 3", `field "qty"`, "positive"}},
		{file: "bad_sku.eml", rejectSub: []string{`attachment "order.csv"`, "line 3", `field "sku"`, `"A_1!"`}},
		{file: "empty_csv.eml", rejectSub: []string{`attachment "order.csv"`, "empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			store := newMemStore()
			svc, err := domain.NewService(store, testConfig())
			require.NoError(t, err)
			raw := readEML(t, tt.file)
			res, err := svc.ProcessMail(context.Background(), raw)
			if tt.rejectSub != nil {
				require.Error(t, err)
				require.ErrorIs(t, err, domain.ErrRejected)
				var rej *domain.RejectError
				require.ErrorAs(t, err, &rej)
				for _, sub := range tt.rejectSub {
					require.Contains(t, rej.Reason, sub)
				}
				require.Empty(t, store.orders, "nothing stored for a rejected mail")
				return
			}
			require.NoError(t, err)
			require.Len(t, res.Orders, len(tt.orders))
			for i, w := range tt.orders {
				got := res.Orders[i]
				require.True(t, got.Created)
				o := got.Order
				require.Equal(t, tt.from, o.Customer)
				require.Equal(t, tt.subject, o.Subject)
				require.Equal(t, w.attachment, o.AttachmentName)
				require.Equal(t, w.total, o.Total, "total")
				require.Equal(t, w.reference, o.Reference)
				require.Equal(t, w.customer, o.CustomerRef)
				require.Equal(t, domain.OrderID(o.MessageID, o.AttachmentHash), o.ID)
				require.Len(t, o.AttachmentHash, 64)
				require.Equal(t, fixedNow, o.ReceivedAt)
				require.False(t, o.MailDate.IsZero())
				require.Len(t, o.Lines, len(w.lines))
				for j, wl := range w.lines {
					require.Equal(t, j+1, o.Lines[j].No)
					require.Equal(t, wl.sku, o.Lines[j].SKU)
					require.Equal(t, wl.qty, o.Lines[j].Quantity)
					require.Equal(t, wl.price, o.Lines[j].UnitPrice)
					require.Equal(t, wl.price*domain.Money(wl.qty), o.Lines[j].Total)
				}
				if w.audit != "" {
					require.Contains(t, strings.Join(o.Audit, "\n"), w.audit)
				}
			}
			require.Len(t, store.outbox, len(tt.orders), "one confirmation per order")

			// Redelivery: the same orders, nothing created.
			again, err := svc.ProcessMail(context.Background(), raw)
			require.NoError(t, err)
			require.Len(t, again.Orders, len(tt.orders))
			for i := range again.Orders {
				require.False(t, again.Orders[i].Created)
				require.Equal(t, res.Orders[i].Order.ID, again.Orders[i].Order.ID)
			}
			require.Len(t, store.outbox, len(tt.orders))
		})
	}
}

func TestProcessMailLFLineEndings(t *testing.T) {
	t.Parallel()
	raw := []byte(strings.ReplaceAll(string(readEML(t, "nested_base64.eml")), "\r\n", "\n"))
	svc, err := domain.NewService(newMemStore(), testConfig())
	require.NoError(t, err)
	res, err := svc.ProcessMail(context.Background(), raw)
	require.NoError(t, err)
	require.Len(t, res.Orders, 1)
	require.Equal(t, domain.Money(13250), res.Orders[0].Order.Total)
}

func TestProcessMailStoreFailureIsRetryable(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	store.fail = errors.New("disk full")
	svc, err := domain.NewService(store, testConfig())
	require.NoError(t, err)
	_, err = svc.ProcessMail(context.Background(), readEML(t, "mixed_csv.eml"))
	require.Error(t, err)
	require.NotErrorIs(t, err, domain.ErrRejected)
	require.ErrorContains(t, err, "disk full")
}

func TestProcessMailCanceled(t *testing.T) {
	t.Parallel()
	svc, err := domain.NewService(newMemStore(), testConfig())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = svc.ProcessMail(ctx, readEML(t, "mixed_csv.eml"))
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, domain.ErrRejected)
}

func TestLimits(t *testing.T) {
	t.Parallel()
	raw := readEML(t, "mixed_csv.eml")
	_, err := domain.ParseMail(raw, domain.Config{MaxMailBytes: 100})
	require.ErrorIs(t, err, domain.ErrRejected)
	require.ErrorContains(t, err, "limit of 100 bytes")

	_, err = domain.ParseMail(raw, domain.Config{MaxAttachmentBytes: 10})
	require.ErrorIs(t, err, domain.ErrRejected)
	require.ErrorContains(t, err, `attachment "order.csv"`)
	require.ErrorContains(t, err, "limit of 10 bytes")

	_, _, err = domain.BuildOrders(raw, domain.Config{MaxLinesPerOrder: 1})
	require.ErrorIs(t, err, domain.ErrRejected)
	require.ErrorContains(t, err, "more than 1 order lines")

	_, err = domain.ParseMail(readEML(t, "nested_base64.eml"), domain.Config{MaxDepth: 1})
	require.ErrorContains(t, err, "nested deeper than 1")

	_, err = domain.ParseMail(readEML(t, "nested_base64.eml"), domain.Config{MaxParts: 3})
	require.ErrorContains(t, err, "more than 3 MIME parts")
}

func TestNoMessageIDIsSynthesisedDeterministically(t *testing.T) {
	t.Parallel()
	raw := []byte("From: a@example.com\r\nSubject: x\r\nContent-Type: text/csv; name=o.csv\r\n\r\nsku,qty,price\r\nAB-1,1,1\r\n")
	o1, _, err := domain.BuildOrders(raw, testConfig())
	require.NoError(t, err)
	o2, _, err := domain.BuildOrders(raw, testConfig())
	require.NoError(t, err)
	require.Equal(t, o1[0].ID, o2[0].ID)
	require.Contains(t, o1[0].MessageID, "@mailorder.invalid")
	require.Contains(t, strings.Join(o1[0].Audit, "\n"), "no Message-ID")
}

func TestNoSenderRejected(t *testing.T) {
	t.Parallel()
	raw := []byte("Subject: x\r\nContent-Type: text/csv; name=o.csv\r\n\r\nsku,qty,price\r\nAB-1,1,1\r\n")
	_, _, err := domain.BuildOrders(raw, testConfig())
	require.ErrorIs(t, err, domain.ErrRejected)
	require.ErrorContains(t, err, "no sender")
}

func TestConfirmation(t *testing.T) {
	t.Parallel()
	orders, _, err := domain.BuildOrders(readEML(t, "json.eml"), testConfig())
	require.NoError(t, err)
	c := orders[0].Confirmation()
	require.Equal(t, "dave@example.com", c.To)
	require.Equal(t, orders[0].ID, c.OrderID)
	require.Contains(t, c.Subject, "PO-77")
	require.Contains(t, c.Body, "Total: 1010.00")
	require.Contains(t, c.Body, "J-200")
}
