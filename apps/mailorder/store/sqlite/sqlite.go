package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/plba/plba/apps/mailorder/domain"
	"github.com/plba/plba/internal/dirlock"
)

// ErrInUse is returned by Open when another process (or another Store in
// this one) has the database open: one process per database file.
var ErrInUse = dirlock.ErrLocked

// memoryPath is the path of an in-memory database: it lives as long as
// the store, has no lock file, and one connection serves writes and
// reads.
const memoryPath = ":memory:"

// Store is the SQLite order store. It is safe for concurrent use.
type Store struct {
	w, r *sql.DB       // one writer connection, a pool of readers
	lock *dirlock.Lock // <path>.lock, held while open

	insOrder, insLine, insOutbox *sql.Stmt
}

// Open opens (or creates) the database at cfg.Path, applies the embedded
// migrations and prepares the write statements. It first takes an
// exclusive lock on <path>.lock (with its pid written in it): a second
// process on the same database fails with ErrInUse, naming the holder.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var lock *dirlock.Lock
	if cfg.Path != memoryPath {
		l, err := dirlock.Acquire(cfg.Path + ".lock")
		if err != nil {
			return nil, fmt.Errorf("sqlite store: %s: %w", cfg.Path, err)
		}
		lock = l
	}
	s, err := open(ctx, cfg)
	if err != nil {
		_ = lock.Release()
		return nil, err
	}
	s.lock = lock
	return s, nil
}

func open(ctx context.Context, cfg Config) (*Store, error) {
	w, err := sql.Open("sqlite", cfg.dsn())
	if err != nil {
		return nil, fmt.Errorf("sqlite store: open %q: %w", cfg.Path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if cfg.Path == memoryPath {
		// Every connection to ":memory:" is a database of its own: the
		// reads go through the writer's one connection.
		s.r = w
	} else {
		r, err := sql.Open("sqlite", cfg.dsn())
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("sqlite store: open %q: %w", cfg.Path, err)
		}
		r.SetMaxOpenConns(cfg.MaxReaders)
		r.SetMaxIdleConns(cfg.MaxReaders)
		s.r = r
	}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&s.insOrder, `INSERT INTO orders (id, message_id, attachment_hash, attachment_name, customer, customer_name,
			customer_ref, reference, subject, total_cents, line_count, audit, mail_date, received_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`},
		{&s.insLine, `INSERT INTO order_lines (order_id, line_no, source_line, sku, quantity, unit_price_cents, total_cents)
			VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&s.insOutbox, `INSERT INTO outbox (order_id, kind, recipient, subject, body, created_at) VALUES (?, ?, ?, ?, ?, ?)`},
	} {
		st, err := w.PrepareContext(ctx, p.sql)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("sqlite store: prepare: %w", err)
		}
		*p.stmt = st
	}
	return s, nil
}

// SaveOrder stores o, its lines and its confirmation (outbox) in one
// transaction. It returns created == false, and changes nothing, when an
// order with the same (message id, attachment hash) is stored already.
func (s *Store) SaveOrder(ctx context.Context, o domain.Order) (created bool, err error) {
	audit, err := json.Marshal(nonNil(o.Audit))
	if err != nil {
		return false, fmt.Errorf("sqlite store: save order %s: encode audit: %w", o.ID, err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("sqlite store: save order %s: begin: %w", o.ID, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback() //nolint:errcheck // the first error is the one to report
		}
	}()
	res, err := tx.StmtContext(ctx, s.insOrder).ExecContext(ctx, o.ID, o.MessageID, o.AttachmentHash, o.AttachmentName,
		o.Customer, o.CustomerName, o.CustomerRef, o.Reference, o.Subject, int64(o.Total), len(o.Lines), string(audit),
		micros(o.MailDate), micros(o.ReceivedAt))
	if err != nil {
		return false, fmt.Errorf("sqlite store: save order %s: %w", o.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite store: save order %s: %w", o.ID, err)
	}
	if n == 0 {
		err = tx.Rollback()
		if err != nil {
			return false, fmt.Errorf("sqlite store: save order %s: rollback: %w", o.ID, err)
		}
		return false, nil
	}
	line := tx.StmtContext(ctx, s.insLine)
	for _, l := range o.Lines {
		if _, err = line.ExecContext(ctx, o.ID, l.No, l.SourceLine, l.SKU, l.Quantity, int64(l.UnitPrice), int64(l.Total)); err != nil {
			return false, fmt.Errorf("sqlite store: save order %s line %d: %w", o.ID, l.No, err)
		}
	}
	c := o.Confirmation()
	if _, err = tx.StmtContext(ctx, s.insOutbox).ExecContext(ctx, o.ID, "order_confirmation", c.To, c.Subject, c.Body, time.Now().UnixMicro()); err != nil {
		return false, fmt.Errorf("sqlite store: save order %s: outbox: %w", o.ID, err)
	}
	if err = tx.Commit(); err != nil {
		return false, fmt.Errorf("sqlite store: save order %s: commit: %w", o.ID, err)
	}
	return true, nil
}

const orderColumns = `id, message_id, attachment_hash, attachment_name, customer, customer_name, customer_ref,
	reference, subject, total_cents, audit, mail_date, received_at`

func scanOrder(sc interface{ Scan(...any) error }) (domain.Order, error) {
	var (
		o                    domain.Order
		total, mail, receivd int64
		audit                string
	)
	if err := sc.Scan(&o.ID, &o.MessageID, &o.AttachmentHash, &o.AttachmentName, &o.Customer, &o.CustomerName,
		&o.CustomerRef, &o.Reference, &o.Subject, &total, &audit, &mail, &receivd); err != nil {
		return o, err
	}
	o.Total = domain.Money(total)
	if err := json.Unmarshal([]byte(audit), &o.Audit); err != nil {
		return o, fmt.Errorf("decode audit: %w", err)
	}
	if len(o.Audit) == 0 {
		o.Audit = nil
	}
	o.MailDate, o.ReceivedAt = fromMicros(mail), fromMicros(receivd)
	return o, nil
}

// Get returns the order with its lines, or an error matching
// domain.ErrOrderNotFound.
func (s *Store) Get(ctx context.Context, id string) (domain.Order, error) {
	o, err := scanOrder(s.r.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Order{}, fmt.Errorf("sqlite store: get %q: %w", id, domain.ErrOrderNotFound)
	}
	if err != nil {
		return domain.Order{}, fmt.Errorf("sqlite store: get %q: %w", id, err)
	}
	orders := []domain.Order{o}
	if err := s.loadLines(ctx, orders); err != nil {
		return domain.Order{}, err
	}
	return orders[0], nil
}

// List returns up to limit orders with their lines, newest first.
func (s *Store) List(ctx context.Context, limit int) ([]domain.Order, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+orderColumns+` FROM orders ORDER BY received_at DESC, id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: list: %w", err)
	}
	defer rows.Close()
	var orders []domain.Order
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite store: list: %w", err)
		}
		orders = append(orders, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: list: %w", err)
	}
	rows.Close()
	if err := s.loadLines(ctx, orders); err != nil {
		return nil, err
	}
	return orders, nil
}

func (s *Store) loadLines(ctx context.Context, orders []domain.Order) error {
	if len(orders) == 0 {
		return nil
	}
	idx := make(map[string]int, len(orders))
	args := make([]any, len(orders))
	for i, o := range orders {
		idx[o.ID] = i
		args[i] = o.ID
	}
	q := `SELECT order_id, line_no, source_line, sku, quantity, unit_price_cents, total_cents FROM order_lines
		WHERE order_id IN (?` + strings.Repeat(",?", len(orders)-1) + `) ORDER BY order_id, line_no`
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("sqlite store: load lines: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id           string
			l            domain.Line
			price, total int64
		)
		if err := rows.Scan(&id, &l.No, &l.SourceLine, &l.SKU, &l.Quantity, &price, &total); err != nil {
			return fmt.Errorf("sqlite store: load lines: %w", err)
		}
		l.UnitPrice, l.Total = domain.Money(price), domain.Money(total)
		i := idx[id]
		orders[i].Lines = append(orders[i].Lines, l)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite store: load lines: %w", err)
	}
	return nil
}

// Count returns the number of stored orders.
func (s *Store) Count(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM orders`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite store: count: %w", err)
	}
	return n, nil
}

// PendingConfirmations returns up to limit unsent confirmations, oldest
// first.
func (s *Store) PendingConfirmations(ctx context.Context, limit int) ([]domain.Confirmation, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT order_id, recipient, subject, body FROM outbox
		WHERE sent_at IS NULL ORDER BY id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: pending confirmations: %w", err)
	}
	defer rows.Close()
	var out []domain.Confirmation
	for rows.Next() {
		var c domain.Confirmation
		if err := rows.Scan(&c.OrderID, &c.To, &c.Subject, &c.Body); err != nil {
			return nil, fmt.Errorf("sqlite store: pending confirmations: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store: pending confirmations: %w", err)
	}
	return out, nil
}

// MarkConfirmationSent records that the confirmation of orderID was sent.
// An unknown or already sent confirmation matches domain.ErrOrderNotFound.
func (s *Store) MarkConfirmationSent(ctx context.Context, orderID string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE outbox SET sent_at = ? WHERE order_id = ? AND sent_at IS NULL`, time.Now().UnixMicro(), orderID)
	if err != nil {
		return fmt.Errorf("sqlite store: mark confirmation %q sent: %w", orderID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite store: mark confirmation %q sent: %w", orderID, err)
	} else if n == 0 {
		return fmt.Errorf("sqlite store: mark confirmation %q sent: no pending confirmation: %w", orderID, domain.ErrOrderNotFound)
	}
	return nil
}

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("sqlite store: ping: %w", err)
	}
	return nil
}

// Close closes the statements and both connection pools, then releases
// the lock.
func (s *Store) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.insOrder, s.insLine, s.insOutbox} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	errs = append(errs, s.lock.Release())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite store: close: %w", err)
	}
	return nil
}

var _ domain.Store = (*Store)(nil)

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
