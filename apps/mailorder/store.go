package mailorder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

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
