package shipments

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/task"
)

// holdingEnqueuer is a queue whose first Enqueue waits until release is
// closed; every call is counted, and every task stored.
type holdingEnqueuer struct {
	entered chan struct{} // closed when the first Enqueue begins
	release chan struct{}
	mu      sync.Mutex
	calls   int
}

func newHoldingEnqueuer() *holdingEnqueuer {
	return &holdingEnqueuer{entered: make(chan struct{}), release: make(chan struct{})}
}

func (e *holdingEnqueuer) Enqueue(ctx context.Context, ts ...*task.Task) error {
	e.mu.Lock()
	e.calls++
	n := e.calls
	e.mu.Unlock()
	for _, t := range ts {
		t.Prepare(time.Now())
	}
	if n == 1 {
		close(e.entered)
		select {
		case <-e.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (e *holdingEnqueuer) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls
}

const testSecret = "0123456789abcdef-test"

func testConfig() Config {
	c := DefaultConfig()
	c.NotifyURL, c.WebhookSecret = "http://127.0.0.1:9/notify", testSecret
	c.WebhookEnqueueTimeout = time.Minute
	return c
}

const testEvent = `{"shipment":"s-1","order":"o-17","email":"ada@example.com","carrier":"DHL","tracking":"JD0123"}`

// serve posts body signed sig to h and returns the recorded answer.
func serve(h http.Handler, body, sig string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, WebhookPath, strings.NewReader(body))
	req.Header.Set(SignatureHeader, sig)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// The same signed request posted twice at once (the warehouse retrying a
// request it gave up waiting on while the first is still being queued) is
// queued once: the second is not acknowledged while the first is in
// flight (409, Retry-After), and once the first is queued the same
// request is answered as a duplicate of it.
func TestWebhookSameRequestAtOnceQueuedOnce(t *testing.T) {
	t.Parallel()
	e := newHoldingEnqueuer()
	h := webhook(testConfig(), e, zap.NewNop()).Handler
	sig := Sign(testSecret, time.Now(), []byte(testEvent))

	first := make(chan *httptest.ResponseRecorder, 1)
	go func() { first <- serve(h, testEvent, sig) }()
	select {
	case <-e.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the first post never reached the queue")
	}

	again := serve(h, testEvent, sig)
	require.Equal(t, http.StatusConflict, again.Code, again.Body.String())
	require.NotEmpty(t, again.Header().Get("Retry-After"))
	require.Equal(t, 1, e.count(), "the second post reached the queue while the first was in flight")

	close(e.release)
	var w *httptest.ResponseRecorder
	select {
	case w = <-first:
	case <-time.After(30 * time.Second):
		t.Fatal("the first post was never answered")
	}
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	var a Answer
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &a))
	require.NotEmpty(t, a.Task)
	require.False(t, a.Duplicate)

	w = serve(h, testEvent, sig)
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	var dup Answer
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &dup))
	require.Equal(t, Answer{Task: a.Task, Duplicate: true}, dup)
	require.Equal(t, 1, e.count())
}

// failingOnceEnqueuer refuses its first Enqueue, then stores.
type failingOnceEnqueuer struct{ calls int }

func (e *failingOnceEnqueuer) Enqueue(_ context.Context, ts ...*task.Task) error {
	e.calls++
	if e.calls == 1 {
		return errors.New("no room")
	}
	for _, t := range ts {
		t.Prepare(time.Now())
	}
	return nil
}

// A request whose notice was not queued (503) leaves no claim behind: the
// warehouse's retry of it is queued.
func TestWebhookRetryAfterAFailedEnqueueIsQueued(t *testing.T) {
	t.Parallel()
	e := &failingOnceEnqueuer{}
	h := webhook(testConfig(), e, zap.NewNop()).Handler
	sig := Sign(testSecret, time.Now(), []byte(testEvent))
	w := serve(h, testEvent, sig)
	require.Equal(t, http.StatusServiceUnavailable, w.Code, w.Body.String())
	w = serve(h, testEvent, sig)
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	require.NotContains(t, w.Body.String(), "duplicate")
	require.Equal(t, 2, e.calls)
}
