package queue_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// TestDeadQueryMatcherAgreesWithMatches: the set-based matcher a scan
// uses selects exactly what Matches selects, with and without ids and
// other filters.
func TestDeadQueryMatcherAgreesWithMatches(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	letters := []queue.DeadLetter{
		{Task: &task.Task{ID: "a", Kind: "k1", Key: "ka"}, Reason: "Boom", At: at},
		{Task: &task.Task{ID: "b", Kind: "k2", Key: "kb"}, Reason: "other", At: at.Add(time.Hour)},
		{Task: &task.Task{ID: "c", Kind: "k1", Key: "kc"}, Reason: "boom again", At: at.Add(2 * time.Hour)},
		{Task: nil},
	}
	queries := []queue.DeadQuery{
		{},
		{IDs: []string{"a", "c", "zz"}},
		{IDs: []string{"b"}, Kind: "k1"},
		{IDs: []string{"a", "b", "c"}, Reason: "BOOM"},
		{Kind: "k1", Since: at.Add(time.Minute)},
		{IDs: []string{"a", "b"}, Until: at.Add(time.Minute)},
		{Key: "kb", IDs: []string{"b"}},
	}
	want := [][]string{{"a", "b", "c"}, {"a", "c"}, nil, {"a", "c"}, {"c"}, {"a"}, {"b"}}
	for i, q := range queries {
		m := q.Matcher()
		var got []string
		for _, d := range letters {
			require.Equal(t, q.Matches(d), m(d), "query %d, letter %+v", i, d.Task)
			if m(d) {
				got = append(got, d.Task.ID)
			}
		}
		require.Equal(t, want[i], got, "query %d", i)
	}
}
