package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

// errClosed is returned by a store used after Close.
var errClosed = errors.New("store closed")

// pool is a small bounded pool of pgx connections: at most max are open,
// idle ones are reused, and one that a failed or cancelled statement may
// have left mid-protocol (closed, busy, or inside a transaction) is closed
// instead of being reused.
type pool struct {
	cfg   *pgx.ConnConfig
	slots chan struct{}  // one token per connection in use
	idle  chan *pgx.Conn // capacity max: a release never blocks

	mu     sync.Mutex
	closed bool
}

func newPool(cfg *pgx.ConnConfig, max int) *pool {
	return &pool{cfg: cfg, slots: make(chan struct{}, max), idle: make(chan *pgx.Conn, max)}
}

// with runs fn on a connection and gives it back afterwards.
func (p *pool) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	c, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	err = fn(c)
	p.release(c)
	return err
}

func (p *pool) acquire(ctx context.Context) (*pgx.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		<-p.slots
		return nil, errClosed
	}
	for {
		select {
		case c := <-p.idle:
			if c.IsClosed() {
				continue
			}
			return c, nil
		default:
		}
		break
	}
	c, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.slots
		return nil, fmt.Errorf("connect: %w", err)
	}
	return c, nil
}

func (p *pool) release(c *pgx.Conn) {
	defer func() { <-p.slots }()
	p.mu.Lock()
	reuse := !p.closed && !c.IsClosed() && !c.PgConn().IsBusy() && c.PgConn().TxStatus() == 'I'
	if reuse {
		select {
		case p.idle <- c:
		default: // cannot happen (capacity max), but never block
			reuse = false
		}
	}
	p.mu.Unlock()
	if !reuse {
		_ = c.Close(context.Background())
	}
}

// close closes the idle connections and makes later acquires fail; busy
// ones are closed by their release.
func (p *pool) close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	var conns []*pgx.Conn
	for len(p.idle) > 0 {
		conns = append(conns, <-p.idle)
	}
	p.mu.Unlock()
	var errs []error
	for _, c := range conns {
		errs = append(errs, c.Close(ctx))
	}
	return errors.Join(errs...)
}
