package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/plba/plba/apps/mailorder/domain"
)

// Store is the PostgreSQL order store. It is safe for concurrent use.
type Store struct {
	pool *pool
}

var _ domain.Store = (*Store)(nil)

// Open connects to the database, creates cfg.Schema when missing and
// applies the embedded migrations. Every connection of the store sets
// the session's search_path to cfg.Schema and its
// idle_in_transaction_session_timeout to cfg.IdleInTransactionTimeout.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cc, err := parseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres store: parse url: %w", err)
	}
	schema := pgx.Identifier{cfg.Schema}.Sanitize()
	cc.RuntimeParams["search_path"] = schema
	cc.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt(cfg.IdleInTransactionTimeout.Milliseconds(), 10)
	s := &Store{pool: newPool(cc, cfg.MaxConns)}
	if err := s.migrate(ctx, schema); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// SaveOrder stores o, its lines and its confirmation (outbox) in one
// transaction. It returns created == false, and changes nothing, when an
// order with the same (message id, attachment hash) is stored already;
// a concurrent saver of the same order waits for the first one's
// transaction and then finds it.
func (s *Store) SaveOrder(ctx context.Context, o domain.Order) (created bool, err error) {
	err = s.pool.with(ctx, func(c *pgx.Conn) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
		tag, err := tx.Exec(ctx, `INSERT INTO orders (id, message_id, attachment_hash, attachment_name, customer,
			customer_name, customer_ref, reference, subject, total_cents, line_count, audit, mail_date, received_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING`,
			o.ID, o.MessageID, o.AttachmentHash, o.AttachmentName, o.Customer, o.CustomerName, o.CustomerRef,
			o.Reference, o.Subject, int64(o.Total), len(o.Lines), nonNil(o.Audit), nullTime(o.MailDate), o.ReceivedAt.UTC())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil // stored before: the deferred rollback ends the transaction
		}
		b := &pgx.Batch{}
		for _, l := range o.Lines {
			b.Queue(`INSERT INTO order_lines (order_id, line_no, source_line, sku, quantity, unit_price_cents, total_cents)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, o.ID, l.No, l.SourceLine, l.SKU, l.Quantity, int64(l.UnitPrice), int64(l.Total))
		}
		cf := o.Confirmation()
		b.Queue(`INSERT INTO outbox (order_id, kind, recipient, subject, body) VALUES ($1, $2, $3, $4, $5)`,
			o.ID, "order_confirmation", cf.To, cf.Subject, cf.Body)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("lines and outbox: %w", err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		created = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("postgres store: save order %s: %w", o.ID, err)
	}
	return created, nil
}

const orderColumns = `id, message_id, attachment_hash, attachment_name, customer, customer_name, customer_ref,
	reference, subject, total_cents, audit, mail_date, received_at`

func scanOrder(row pgx.Row) (domain.Order, error) {
	var (
		o        domain.Order
		total    int64
		mailDate pgtype.Timestamptz
	)
	if err := row.Scan(&o.ID, &o.MessageID, &o.AttachmentHash, &o.AttachmentName, &o.Customer, &o.CustomerName,
		&o.CustomerRef, &o.Reference, &o.Subject, &total, &o.Audit, &mailDate, &o.ReceivedAt); err != nil {
		return o, err
	}
	o.Total = domain.Money(total)
	if len(o.Audit) == 0 {
		o.Audit = nil
	}
	if mailDate.Valid {
		o.MailDate = mailDate.Time.UTC()
	}
	o.ReceivedAt = o.ReceivedAt.UTC()
	return o, nil
}

// Get returns the order with its lines, or an error matching
// domain.ErrOrderNotFound.
func (s *Store) Get(ctx context.Context, id string) (domain.Order, error) {
	var o domain.Order
	err := s.pool.with(ctx, func(c *pgx.Conn) error {
		var err error
		o, err = scanOrder(c.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.ErrOrderNotFound
		}
		if err != nil {
			return err
		}
		orders := []domain.Order{o}
		err = loadLines(ctx, c, orders)
		o = orders[0]
		return err
	})
	if err != nil {
		return domain.Order{}, fmt.Errorf("postgres store: get %q: %w", id, err)
	}
	return o, nil
}

// List returns up to limit orders with their lines, newest first.
func (s *Store) List(ctx context.Context, limit int) ([]domain.Order, error) {
	if limit <= 0 {
		return nil, nil
	}
	var orders []domain.Order
	err := s.pool.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT `+orderColumns+` FROM orders ORDER BY received_at DESC, id LIMIT $1`, limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			o, err := scanOrder(rows)
			if err != nil {
				rows.Close()
				return err
			}
			orders = append(orders, o)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return loadLines(ctx, c, orders)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres store: list: %w", err)
	}
	return orders, nil
}

func loadLines(ctx context.Context, c *pgx.Conn, orders []domain.Order) error {
	if len(orders) == 0 {
		return nil
	}
	idx := make(map[string]int, len(orders))
	ids := make([]string, len(orders))
	for i, o := range orders {
		idx[o.ID] = i
		ids[i] = o.ID
	}
	rows, err := c.Query(ctx, `SELECT order_id, line_no, source_line, sku, quantity, unit_price_cents, total_cents
		FROM order_lines WHERE order_id = ANY($1) ORDER BY order_id, line_no`, ids)
	if err != nil {
		return fmt.Errorf("load lines: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id           string
			l            domain.Line
			price, total int64
		)
		if err := rows.Scan(&id, &l.No, &l.SourceLine, &l.SKU, &l.Quantity, &price, &total); err != nil {
			return fmt.Errorf("load lines: %w", err)
		}
		l.UnitPrice, l.Total = domain.Money(price), domain.Money(total)
		i := idx[id]
		orders[i].Lines = append(orders[i].Lines, l)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load lines: %w", err)
	}
	return nil
}

// Count returns the number of stored orders.
func (s *Store) Count(ctx context.Context) (int, error) {
	var n int
	err := s.pool.with(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres store: count: %w", err)
	}
	return n, nil
}

// PendingConfirmations returns up to limit unsent confirmations, oldest
// first.
func (s *Store) PendingConfirmations(ctx context.Context, limit int) ([]domain.Confirmation, error) {
	var out []domain.Confirmation
	err := s.pool.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT order_id, recipient, subject, body FROM outbox
			WHERE sent_at IS NULL ORDER BY id LIMIT $1`, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var cf domain.Confirmation
			if err := rows.Scan(&cf.OrderID, &cf.To, &cf.Subject, &cf.Body); err != nil {
				return err
			}
			out = append(out, cf)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres store: pending confirmations: %w", err)
	}
	return out, nil
}

// MarkConfirmationSent records that the confirmation of orderID was sent.
// An unknown or already sent confirmation matches domain.ErrOrderNotFound.
func (s *Store) MarkConfirmationSent(ctx context.Context, orderID string) error {
	err := s.pool.with(ctx, func(c *pgx.Conn) error {
		tag, err := c.Exec(ctx, `UPDATE outbox SET sent_at = now() WHERE order_id = $1 AND sent_at IS NULL`, orderID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("no pending confirmation: %w", domain.ErrOrderNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres store: mark confirmation %q sent: %w", orderID, err)
	}
	return nil
}

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	err := s.pool.with(ctx, func(c *pgx.Conn) error {
		var one int
		return c.QueryRow(ctx, `SELECT 1`).Scan(&one)
	})
	if err != nil {
		return fmt.Errorf("postgres store: ping: %w", err)
	}
	return nil
}

// Close closes every connection. Connections in use are closed when their
// statement ends. It is idempotent.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.pool.close(ctx); err != nil {
		return fmt.Errorf("postgres store: close: %w", err)
	}
	return nil
}

func nullTime(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t.UTC(), Valid: true}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
