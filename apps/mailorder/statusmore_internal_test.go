package mailorder

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/platform/queue/memory"
	"github.com/plba/plba/platform/task"
)

// TestStatusSaysItsFailedMailsAreNotAll: the status looks at the oldest
// statusDeadLimit dead letters; with more in the queue its failed mails
// are not all of them, and its answer says so (failed_mails_more), not
// only a list that reads as every failed mail.
func TestStatusSaysItsFailedMailsAreNotAll(t *testing.T) {
	ctx := context.Background()
	cfg, st, _ := testStore(t)
	b := memory.New(memory.Options{})
	t.Cleanup(func() { _ = b.Close(ctx) })
	deadLetter := func(i int) {
		tk := &task.Task{Kind: Kind, Queue: cfg.Queue, Payload: []byte("mail"),
			Headers: map[string]string{imap.HeaderMessageID: fmt.Sprintf("m%d@example.com", i)}}
		require.NoError(t, b.Enqueue(ctx, tk))
		ds, err := b.Lease(ctx, cfg.Queue, 1, time.Minute)
		require.NoError(t, err)
		require.NoError(t, b.DeadLetter(ctx, ds[0], "no attachment"))
	}
	a := testApp(t, cfg, st, b)
	get := func() map[string]any {
		rec := httptest.NewRecorder()
		statusRoute(a).Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, StatusPath, nil))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var m map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m))
		return m
	}
	for i := range statusDeadLimit {
		deadLetter(i)
	}
	m := get()
	require.Len(t, m["failed_mails"], statusDeadLimit)
	require.Nil(t, m["failed_mails_more"], "every one is listed")
	deadLetter(statusDeadLimit)
	m = get()
	require.Len(t, m["failed_mails"], statusDeadLimit)
	require.Equal(t, true, m["failed_mails_more"], "one more than listed")
}
