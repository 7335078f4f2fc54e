package mailorder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/plba/plba/apps/mailorder/domain"
	"github.com/plba/plba/apps/mailorder/store/postgres"
	"github.com/plba/plba/apps/mailorder/store/sqlite"
)

// Store is the order store the application runs on: the domain's port plus
// the reads its status page and health check need. Both the SQLite and the
// PostgreSQL store implement it.
type Store interface {
	domain.Store
	// Count returns the number of stored orders.
	Count(ctx context.Context) (int, error)
	// List returns up to limit orders, newest first.
	List(ctx context.Context, limit int) ([]domain.Order, error)
	// Get returns the order with id; an unknown id matches
	// domain.ErrOrderNotFound.
	Get(ctx context.Context, id string) (domain.Order, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

var (
	_ Store = (*sqlite.Store)(nil)
	_ Store = (*postgres.Store)(nil)
)

// OpenStore opens the store cfg chooses (creating the SQLite file's
// directory when missing) and applies its migrations.
func OpenStore(ctx context.Context, cfg StoreConfig) (Store, error) {
	switch cfg.Driver {
	case DriverPostgres:
		s, err := postgres.Open(ctx, postgres.Config(cfg.Postgres))
		if err != nil {
			return nil, fmt.Errorf("mailorder: %w", err)
		}
		return s, nil
	case DriverSQLite, "":
		if dir := filepath.Dir(cfg.SQLite.Path); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("mailorder: sqlite store: create directory %q: %w", dir, err)
			}
		}
		s, err := sqlite.Open(ctx, sqlite.Config(cfg.SQLite))
		if err != nil {
			return nil, fmt.Errorf("mailorder: %w", err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("mailorder: unknown store driver %q", cfg.Driver)
	}
}

// ErrStoreNotOpen is what the host's store answers before the component
// "mailorder/store" started and after it stopped.
var ErrStoreNotOpen = errors.New("mailorder: store not open")

// startedStore is the Store of the host's graph. The component
// "mailorder/store" opens the configured store (creating the SQLite
// file's directory, applying migrations) when it starts and closes it
// when it stops, so building the graph touches no database: `host config
// validate` neither creates files nor migrates a live database.
type startedStore struct {
	cfg StoreConfig
	cur atomic.Pointer[storeRef]
}

type storeRef struct{ Store }

var _ Store = (*startedStore)(nil)

// open opens the configured store; the component's start.
func (s *startedStore) open(ctx context.Context) error {
	st, err := OpenStore(ctx, s.cfg)
	if err != nil {
		return err
	}
	if old := s.cur.Swap(&storeRef{st}); old != nil {
		_ = old.Close() // not reached: a component starts once
	}
	return nil
}

func (s *startedStore) get() (Store, error) {
	if r := s.cur.Load(); r != nil {
		return r.Store, nil
	}
	return nil, ErrStoreNotOpen
}

// SaveOrder implements domain.Store on the open store.
func (s *startedStore) SaveOrder(ctx context.Context, o domain.Order) (bool, error) {
	st, err := s.get()
	if err != nil {
		return false, err
	}
	return st.SaveOrder(ctx, o)
}

// Count counts the orders of the open store.
func (s *startedStore) Count(ctx context.Context) (int, error) {
	st, err := s.get()
	if err != nil {
		return 0, err
	}
	return st.Count(ctx)
}

// List lists orders of the open store.
func (s *startedStore) List(ctx context.Context, limit int) ([]domain.Order, error) {
	st, err := s.get()
	if err != nil {
		return nil, err
	}
	return st.List(ctx, limit)
}

// Get reads an order of the open store.
func (s *startedStore) Get(ctx context.Context, id string) (domain.Order, error) {
	st, err := s.get()
	if err != nil {
		return domain.Order{}, err
	}
	return st.Get(ctx, id)
}

// Ping pings the open store; before start it fails with ErrStoreNotOpen.
func (s *startedStore) Ping(ctx context.Context) error {
	st, err := s.get()
	if err != nil {
		return err
	}
	return st.Ping(ctx)
}

// Close closes the open store (the component's stop); closing a store
// that is not open does nothing.
func (s *startedStore) Close() error {
	if r := s.cur.Swap(nil); r != nil {
		return r.Close()
	}
	return nil
}
