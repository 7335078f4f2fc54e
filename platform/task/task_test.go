package task_test

import (
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/task"
)

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	base := errors.New("boom")
	require.Nil(t, task.Permanent(nil))
	p := task.Permanent(base)
	require.True(t, task.IsPermanent(p))
	require.True(t, task.IsPermanent(errors.Join(errors.New("x"), p)), "found in a chain")
	require.ErrorIs(t, p, base)
	require.False(t, task.IsPermanent(base))

	r := task.RetryAfter(time.Minute, base)
	d, ok := task.RetryDelay(r)
	require.True(t, ok)
	require.Equal(t, time.Minute, d)
	require.ErrorIs(t, r, base)
	require.Error(t, task.RetryAfter(time.Second, nil), "asking for a retry is a failure")
	_, ok = task.RetryDelay(base)
	require.False(t, ok)

	pe := &task.PanicError{Value: "nil map"}
	require.Equal(t, "handler panic: nil map", pe.Error())
}

// TestErrorClassesWithoutCause: the error classes print and unwrap when
// made without the error they wrap, or as nil pointers, instead of
// panicking (a panic while the worker pool settled a task used to run the
// task again forever).
func TestErrorClassesWithoutCause(t *testing.T) {
	t.Parallel()
	const noReason = "permanent failure (no reason given)"
	var nilPerm *task.PermanentError
	for _, p := range []*task.PermanentError{{}, nilPerm} {
		require.Equal(t, noReason, p.Error())
		require.NoError(t, p.Unwrap())
		require.True(t, task.IsPermanent(p))
	}

	var nilRetry *task.RetryAfterError
	require.Equal(t, "retry requested", nilRetry.Error())
	require.NoError(t, nilRetry.Unwrap())
	_, ok := task.RetryDelay(nilRetry)
	require.False(t, ok, "a nil RetryAfterError asks for no delay")
	require.Equal(t, "retry after 0s: <nil>", (&task.RetryAfterError{}).Error())

	var nilPanic *task.PanicError
	require.Equal(t, "handler panic", nilPanic.Error())
}

// TestPrepareAgainAllocatesNothing: a prepared task prepared again (the
// producer's Prepare, then the backend's) tells its generated id without
// an allocation.
func TestPrepareAgainAllocatesNothing(t *testing.T) {
	now := time.Now()
	tk := &task.Task{Kind: "k"}
	tk.Prepare(now)
	require.Zero(t, testing.AllocsPerRun(100, func() { tk.Prepare(now) }))
	require.True(t, tk.KeyGenerated())
}

func TestPrepareAndClone(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tk := &task.Task{Kind: "k"}
	tk.Prepare(now)
	require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{32}$`), tk.ID)
	require.Equal(t, tk.ID, tk.Key, "the key defaults to the id")
	require.Equal(t, now, tk.EnqueuedAt)
	id := tk.ID
	tk.Prepare(now.Add(time.Hour))
	require.Equal(t, id, tk.ID, "idempotent")
	require.Equal(t, now, tk.EnqueuedAt)

	require.True(t, tk.KeyGenerated(), "neither key nor id given")
	tk.Prepare(now)
	require.True(t, tk.KeyGenerated(), "a second Prepare keeps it")

	keyed := &task.Task{Kind: "k", Key: "order-1"}
	keyed.Prepare(now)
	require.Equal(t, "order-1", keyed.Key)
	require.False(t, keyed.KeyGenerated(), "the producer chose the key")
	byID := &task.Task{Kind: "k", ID: "mine"}
	byID.Prepare(now)
	require.Equal(t, "mine", byID.Key)
	require.False(t, byID.KeyGenerated(), "the producer chose the id, which is the key")

	// The flag goes with the key: a copy keeps it, a key set since (a
	// schedule's on a task its build prepared) is the producer's.
	require.True(t, tk.Clone().KeyGenerated(), "a clone keeps it")
	cp := *tk
	require.True(t, cp.KeyGenerated(), "a copy keeps it")
	rekeyed := tk.Clone()
	rekeyed.Key = "schedule-key"
	rekeyed.Prepare(now)
	require.False(t, rekeyed.KeyGenerated(), "a key set after Prepare is the producer's")
	rekeyed.Key = rekeyed.ID
	rekeyed.Prepare(now)
	require.False(t, rekeyed.KeyGenerated(), "and stays so, even set back to the id")

	// An id given since, the key emptied or set to it (a prepared task
	// cloned as a template): both are the producer's.
	for _, key := range []string{"", "order-9"} {
		reid := tk.Clone()
		reid.ID, reid.Key = "order-9", key
		reid.Prepare(now)
		require.Equal(t, "order-9", reid.Key)
		require.False(t, reid.KeyGenerated(), "an id given after Prepare (key %q) is the producer's", key)
	}
	// Another generated id, the key emptied: not the one Prepare made
	// for this task.
	other := &task.Task{Kind: "k"}
	other.Prepare(now)
	reid := tk.Clone()
	reid.ID, reid.Key = other.ID, ""
	reid.Prepare(now)
	require.False(t, reid.KeyGenerated(), "another task's generated id given is the producer's")
	// Its own id, the key emptied: still the key Prepare made.
	same := tk.Clone()
	same.Key = ""
	same.Prepare(now)
	require.Equal(t, tk.ID, same.Key)
	require.True(t, same.KeyGenerated(), "the key emptied is the generated id again")

	require.Empty(t, tk.Header("x"))
	tk.SetHeader("x", "1")
	tk.Payload = []byte("abc")
	c := tk.Clone()
	c.Headers["x"] = "2"
	c.Payload[0] = 'z'
	require.Equal(t, "1", tk.Header("x"), "headers are copied")
	require.Equal(t, "abc", string(tk.Payload), "payload is copied")
}

func TestNewIDUnique(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool, 10000)
	for range 10000 {
		id := task.NewID()
		require.Len(t, id, 32)
		require.False(t, seen[id], "duplicate id %s", id)
		seen[id] = true
	}
}

func TestRouteHelpers(t *testing.T) {
	t.Parallel()
	require.Equal(t, task.DefaultQueue, task.Route{}.QueueName())
	require.Equal(t, "mail", task.Route{Queue: "mail"}.QueueName())

}

func TestNewJSON(t *testing.T) {
	t.Parallel()
	_, err := task.NewJSON("k", make(chan int))
	require.ErrorContains(t, err, "task: encode k payload")
	tk, err := task.NewJSON("k", map[string]int{"a": 1})
	require.NoError(t, err)
	require.JSONEq(t, `{"a":1}`, string(tk.Payload))
}

// TestPrepareDropsTheFinishedMark: only a backend marks a task finished
// (a duplicate it dropped, after Prepare); a task that arrives with the
// mark loses it, other headers stay.
func TestPrepareDropsTheFinishedMark(t *testing.T) {
	t.Parallel()
	tk := &task.Task{Kind: "k"}
	tk.SetHeader(task.HeaderFinished, string(task.Succeeded))
	tk.SetHeader(task.HeaderFinishedReason, "forged")
	tk.SetHeader("x-app", "kept")
	tk.Prepare(time.Now())
	_, _, ok := task.Finished(tk)
	require.False(t, ok)
	require.Equal(t, map[string]string{"x-app": "kept"}, tk.Headers)

	task.MarkFinished(tk, task.DeadLettered, "bad")
	o, reason, ok := task.Finished(tk)
	require.True(t, ok, "the backend's mark, made after Prepare, is read")
	require.Equal(t, task.DeadLettered, o)
	require.Equal(t, "bad", reason)

	none := &task.Task{Kind: "k"}
	none.Prepare(time.Now())
	require.Nil(t, none.Headers, "no headers stay nil")
}

// TestPrepareDropsTheHeldMark: only a backend marks a task held (a
// duplicate of a live task, after Prepare); a task that arrives with the
// mark, even an empty one, loses it, and the mark is not a finished one.
func TestPrepareDropsTheHeldMark(t *testing.T) {
	t.Parallel()
	tk := &task.Task{Kind: "k"}
	tk.SetHeader(task.HeaderHeld, "")
	tk.SetHeader("x-app", "kept")
	tk.Prepare(time.Now())
	_, ok := task.Held(tk)
	require.False(t, ok)
	require.Equal(t, map[string]string{"x-app": "kept"}, tk.Headers)

	task.MarkHeld(tk, "other")
	by, ok := task.Held(tk)
	require.True(t, ok, "the backend's mark, made after Prepare, is read")
	require.Equal(t, "other", by)
	_, _, finished := task.Finished(tk)
	require.False(t, finished, "held is not finished")

	unknown := &task.Task{Kind: "k"}
	unknown.Prepare(time.Now())
	task.MarkHeld(unknown, "")
	by, ok = task.Held(unknown)
	require.True(t, ok, "a holder the backend could not name still marks")
	require.Empty(t, by)
	_, ok = task.Held(&task.Task{Kind: "k"})
	require.False(t, ok)
}

// TestPrepareAndSetHeaderAgainWriteNothing: a task prepared and stamped
// once (a backend keeps it, its deliveries share its headers) is not
// written to when it is prepared and stamped again (the same task emitted
// or enqueued again): a handler reading its headers meanwhile is no data
// race (run with -race). Prepare deleted the marks from a task that had
// none, and SetHeader wrote a value the header held already.
func TestPrepareAndSetHeaderAgainWriteNothing(t *testing.T) {
	tk := &task.Task{Kind: "k"}
	tk.SetHeader(task.HeaderCompletion, "inbox")
	tk.Prepare(time.Now())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			_ = tk.Header(task.HeaderCompletion)
		}
	}()
	for range 100 {
		tk.SetHeader(task.HeaderCompletion, "inbox")
		tk.Prepare(time.Now())
	}
	<-done
	require.Equal(t, map[string]string{task.HeaderCompletion: "inbox"}, tk.Headers)
}
