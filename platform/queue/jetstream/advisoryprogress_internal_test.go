package jetstream

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/internal/netfault"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// TestAnAdvisoryHandledLongerThanItsAckWaitIsKeptInProgress: a
// max-deliveries advisory's handling may take up to
// Config.PublishTimeout (a look for a released copy behind a long
// backlog, a server slow to answer), longer than the advisory consumer's
// AckWait (Config.AckWait). It tells the server it is still at work
// meanwhile: the server would deliver the advisory again while it is
// handled, and its failure would be tried again at once, not after its
// backoff. Here the network to the server freezes while the advisory is
// handled, for the whole PublishTimeout. The server heard nothing until
// the handling ended.
func TestAnAdvisoryHandledLongerThanItsAckWaitIsKeptInProgress(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	opts, err := embedded.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"}.Options()
	require.NoError(t, err)
	srv, err := embedded.StartWithOptions(ctx, opts, 20*time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	proxy := netfault.NewProxy(t, srv.NATS().Addr().String())
	const ackWait, publish = 3 * time.Second, 12 * time.Second
	b := openTestBackend(t, Config{URLs: []string{"nats://" + proxy.Addr()}, AckWait: ackWait, PublishTimeout: publish})
	const qn = "advisory-in-progress"
	require.NoError(t, b.Declare(ctx, qn))
	q, err := b.queue(qn)
	require.NoError(t, err)
	data, err := json.Marshal(maxDeliveriesAdvisory{Stream: q.stream, Consumer: b.cfg.Consumer, StreamSeq: 1, Deliveries: 1})
	require.NoError(t, err)
	adv := &slowAdvisory{data: data, settled: make(chan struct{})}

	proxy.Freeze()
	t.Cleanup(proxy.Thaw) // before the backend closes (cleanups run last first)
	start := time.Now()
	go b.onAdvisory(adv)
	select {
	case <-adv.settled:
	case <-time.After(publish + 30*time.Second):
		t.Fatal("the advisory was never settled")
	}
	adv.mu.Lock()
	defer adv.mu.Unlock()
	require.Equal(t, "nak", adv.how, "its handling failed: the server was out of reach")
	require.GreaterOrEqual(t, adv.settledAt.Sub(start), ackWait*2, "handled longer than its AckWait")
	// No span of an AckWait without a word to the server.
	last := start
	for _, at := range append(adv.progress, adv.settledAt) {
		require.Less(t, at.Sub(last), ackWait, "in progress every so often (told at %v, settled at %v, from %v)", adv.progress, adv.settledAt, start)
		last = at
	}
	for _, at := range adv.progress {
		require.False(t, at.After(adv.settledAt), "nothing in progress after the settlement, which it would undo")
	}
}

// slowAdvisory is an advisory message whose handling's words to the
// server are recorded: its settlement, and each in-progress.
type slowAdvisory struct {
	jetstream.Msg // nil: only what onAdvisory calls is here
	data          []byte

	mu        sync.Mutex
	progress  []time.Time
	how       string
	settledAt time.Time
	settled   chan struct{}
}

func (m *slowAdvisory) Data() []byte { return m.data }

func (m *slowAdvisory) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{NumDelivered: 1, Timestamp: time.Now()}, nil
}

func (m *slowAdvisory) InProgress() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.progress = append(m.progress, time.Now())
	return nil
}

func (m *slowAdvisory) settle(how string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.how == "" {
		m.how, m.settledAt = how, time.Now()
		close(m.settled)
	}
	return nil
}

func (m *slowAdvisory) Ack() error                       { return m.settle("ack") }
func (m *slowAdvisory) Term() error                      { return m.settle("term") }
func (m *slowAdvisory) NakWithDelay(time.Duration) error { return m.settle("nak") }
func (m *slowAdvisory) Nak() error                       { return m.settle("nak") }
