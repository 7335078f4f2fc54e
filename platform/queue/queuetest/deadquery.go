package queuetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// testDeadQuery checks QueryDead (pages, cursor, filters, payloads left
// out unless asked for) and GetDead, and that a re-driven task keeps its
// key and headers and starts again at attempt 1.
func testDeadQuery(t *testing.T, s *suite) {
	const n = 7
	tasks := make([]*task.Task, n)
	for i := range tasks {
		tk := s.newTask(fmt.Sprintf("payload-%d", i))
		tk.Key = fmt.Sprintf("key-%d", i)
		if i%2 == 1 {
			tk.Kind = "queuetest.other"
		}
		tk.SetHeader("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		tasks[i] = tk
	}
	s.enqueue(tasks...)
	ds := s.leaseN(n, longLease)
	byID := map[string]*queue.Delivery{}
	for _, d := range ds {
		byID[d.Task.ID] = d
	}
	var mid time.Time
	for i, tk := range tasks {
		d := byID[tk.ID]
		require.NotNil(t, d, "task %d leased", i)
		reason := "boom: broken input"
		if i >= 4 {
			reason = "timeout talking to upstream"
		}
		require.NoError(t, s.b.DeadLetter(s.ctx, d, reason))
		time.Sleep(5 * time.Millisecond) // distinct, ordered dead-letter times
		if i == 3 {
			time.Sleep(20 * time.Millisecond)
			mid = time.Now()
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Pages of 3, oldest first, no payloads, sizes known.
	var got []string
	cursor := ""
	pages := 0
	for {
		page, err := s.b.QueryDead(s.ctx, s.q, queue.DeadQuery{Cursor: cursor, Limit: 3})
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Items), 3)
		pages++
		for _, d := range page.Items {
			require.Nil(t, d.Task.Payload, "a list leaves the payload out")
			require.Equal(t, len("payload-0"), d.PayloadSize)
			require.Equal(t, 1, d.Task.Attempt, "attempts used")
			require.NotEmpty(t, d.Task.Header("traceparent"), "headers are listed")
			got = append(got, d.Task.ID)
		}
		if page.Next == "" {
			break
		}
		require.Less(t, pages, 10, "paging does not end")
		cursor = page.Next
	}
	require.Equal(t, 3, pages)
	want := make([]string, n)
	for i, tk := range tasks {
		want[i] = tk.ID
	}
	require.Equal(t, want, got, "every dead letter once, oldest first")

	// Filters.
	ids := func(q queue.DeadQuery) []string {
		t.Helper()
		page, err := s.b.QueryDead(s.ctx, s.q, q)
		require.NoError(t, err)
		require.Empty(t, page.Next)
		out := []string{}
		for _, d := range page.Items {
			out = append(out, d.Task.ID)
		}
		return out
	}
	require.Equal(t, []string{want[1], want[3], want[5]}, ids(queue.DeadQuery{Kind: "queuetest.other"}))
	require.Equal(t, []string{want[4], want[5], want[6]}, ids(queue.DeadQuery{Reason: "UPSTREAM"}))
	require.Equal(t, []string{want[4], want[5], want[6]}, ids(queue.DeadQuery{Since: mid}))
	require.Equal(t, want[:4], ids(queue.DeadQuery{Until: mid}))
	require.Equal(t, []string{want[5]}, ids(queue.DeadQuery{Kind: "queuetest.other", Since: mid, Reason: "timeout", IDs: []string{want[5], want[6]}}))
	require.Empty(t, ids(queue.DeadQuery{Kind: "no-such-kind"}))
	require.Equal(t, []string{want[3]}, ids(queue.DeadQuery{Key: "key-3"}))

	// A filtered page of one continues where it stopped.
	page, err := s.b.QueryDead(s.ctx, s.q, queue.DeadQuery{Kind: "queuetest.other", Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []string{want[1]}, deadIDs(page.Items))
	require.NotEmpty(t, page.Next)
	page, err = s.b.QueryDead(s.ctx, s.q, queue.DeadQuery{Kind: "queuetest.other", Limit: 2, Cursor: page.Next})
	require.NoError(t, err)
	require.Equal(t, []string{want[3], want[5]}, deadIDs(page.Items))
	require.Empty(t, page.Next)

	// With payloads.
	page, err = s.b.QueryDead(s.ctx, s.q, queue.DeadQuery{Limit: 2, WithPayload: true})
	require.NoError(t, err)
	require.Len(t, page.Items, 2)
	require.Equal(t, "payload-0", string(page.Items[0].Task.Payload))
	require.Equal(t, "payload-1", string(page.Items[1].Task.Payload))

	_, err = s.b.QueryDead(s.ctx, s.q, queue.DeadQuery{Cursor: "not a cursor"})
	require.ErrorIs(t, err, queue.ErrBadCursor)

	// One entry in full.
	d, err := s.b.GetDead(s.ctx, s.q, want[2])
	require.NoError(t, err)
	require.Equal(t, "payload-2", string(d.Task.Payload))
	require.Equal(t, "key-2", d.Task.Key)
	require.Equal(t, "boom: broken input", d.Reason)
	require.Equal(t, 1, d.Task.Attempt)
	require.Equal(t, len("payload-2"), d.PayloadSize)
	require.NotEmpty(t, d.Task.Header("traceparent"))
	_, err = s.b.GetDead(s.ctx, s.q, "no-such-task")
	require.True(t, errors.Is(err, queue.ErrNotFound), "GetDead of an unknown id: %v", err)

	// Re-driven: same id, key and trace context, attempt 1.
	moved, err := s.b.Redrive(s.ctx, s.q, want[2])
	require.NoError(t, err)
	require.Equal(t, 1, moved)
	again := s.leaseOne(s.f.Lease, s.f.Slack)
	require.Equal(t, want[2], again.Task.ID)
	require.Equal(t, "key-2", again.Task.Key)
	require.Equal(t, 1, again.Task.Attempt)
	require.True(t, strings.HasPrefix(again.Task.Header("traceparent"), "00-0af7651916cd43dd8448eb211c80319c-"))
	require.NoError(t, s.b.Ack(s.ctx, again))
	_, err = s.b.GetDead(s.ctx, s.q, want[2])
	require.ErrorIs(t, err, queue.ErrNotFound)
}
