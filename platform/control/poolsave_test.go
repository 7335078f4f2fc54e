package control_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/worker"
)

// failingStore is an OverrideStore whose Save fails with err while it is
// set.
type failingStore struct {
	queue.MemoryOverrides
	mu  sync.Mutex
	err error
}

func (s *failingStore) Save(ctx context.Context, q string, o queue.PoolOverride) error {
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.MemoryOverrides.Save(ctx, q, o)
}

// A pause the override store did not save is undone: the answer says so
// (in effect nowhere), the audit says failed, and the pool runs. One the
// store cannot say it saved is answered 504 and audited "unknown".
func TestPoolControlTheStoreDidNotSave(t *testing.T) {
	b, _, _ := backends()[0].open(t)
	store := &failingStore{err: errors.New("store down")}
	e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 1})
	pause := control.Prefix + "/pools/" + testQueue + "/pause"

	code, body := e.call("POST", pause, nil, nil)
	require.Equal(t, http.StatusInternalServerError, code, body)
	require.Contains(t, body, "in effect nowhere")
	p, _ := e.rt.Pool(testQueue)
	require.False(t, p.Paused())

	store.mu.Lock()
	store.err = fmt.Errorf("put: timeout: %w", queue.ErrOutcomeUnknown)
	store.mu.Unlock()
	code, body = e.call("POST", pause, nil, nil)
	require.Equal(t, http.StatusGatewayTimeout, code, body)
	require.Contains(t, body, "may or may not")
	require.False(t, p.Paused())

	audit := e.auditOf("pool.pause")
	require.Len(t, audit, 2)
	require.Equal(t, "failed", audit[0]["result"])
	require.Equal(t, "unknown", audit[1]["result"])
	saved, err := store.Load(context.Background())
	require.NoError(t, err)
	require.Empty(t, saved)
}
