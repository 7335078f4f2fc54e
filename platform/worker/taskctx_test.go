package worker

import (
	"context"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
)

type ctxKey struct{}

// newTestContext is newTaskContext with an absolute deadline.
func newTestContext(parent context.Context, deadline time.Time) *taskContext {
	epoch := time.Now()
	return newTaskContext(parent, &epoch, deadline.Sub(epoch))
}

// TestTaskContextSize: the handler's context is 64 bytes, one size class
// (see taskContext).
func TestTaskContextSize(t *testing.T) {
	t.Parallel()
	require.LessOrEqual(t, unsafe.Sizeof(taskContext{}), uintptr(64))
}

func TestTaskContextDeadline(t *testing.T) {
	t.Parallel()
	parent := context.WithValue(context.Background(), ctxKey{}, "v")
	deadline := time.Now().Add(50 * time.Millisecond)
	c := newTestContext(parent, deadline)
	defer c.finish()

	d, ok := c.Deadline()
	require.True(t, ok)
	require.True(t, d.Equal(deadline), "deadline %v, want %v", d, deadline)
	require.Equal(t, "v", c.Value(ctxKey{}))
	require.NoError(t, c.Err())

	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the deadline")
	}
	require.False(t, time.Now().Before(deadline), "closed early")
	require.ErrorIs(t, c.Err(), context.DeadlineExceeded)
	c.finish()
	require.ErrorIs(t, c.Err(), context.DeadlineExceeded, "the first error sticks")
}

func TestTaskContextUnarmedErr(t *testing.T) {
	t.Parallel()
	c := newTestContext(context.Background(), time.Now().Add(-time.Millisecond))
	require.ErrorIs(t, c.Err(), context.DeadlineExceeded, "judged without a timer")
	select {
	case <-c.Done():
	default:
		t.Fatal("Done of an expired context is closed")
	}
}

func TestTaskContextParentCancel(t *testing.T) {
	t.Parallel()
	parent, cancel := context.WithCancel(context.Background())
	armed := newTestContext(parent, time.Now().Add(time.Hour))
	unarmed := newTestContext(parent, time.Now().Add(time.Hour))
	done := armed.Done()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed when the parent ended")
	}
	require.ErrorIs(t, armed.Err(), context.Canceled)
	require.ErrorIs(t, unarmed.Err(), context.Canceled)
	armed.finish()
	unarmed.finish()
}

func TestTaskContextFinishAndChildren(t *testing.T) {
	t.Parallel()
	c := newTestContext(context.Background(), time.Now().Add(time.Hour))
	child, cancelChild := context.WithTimeout(c, time.Minute)
	defer cancelChild()
	d, _ := child.Deadline()
	require.WithinDuration(t, time.Now().Add(time.Minute), d, 5*time.Second, "the nearer deadline wins")
	c.finish()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a derived context did not end with the task")
	}
	require.ErrorIs(t, c.Err(), context.Canceled)
	require.ErrorIs(t, child.Err(), context.Canceled)
	select {
	case <-c.Done():
	default:
		t.Fatal("Done after finish is closed")
	}
}

// TestTaskContextAfterFunc: children linked through AfterFunc end at the
// task's deadline; a stopped registration is not called; one made after
// the end runs at once.
func TestTaskContextAfterFunc(t *testing.T) {
	t.Parallel()
	c := newTestContext(context.Background(), time.Now().Add(50*time.Millisecond))
	child, cancelChild := context.WithCancel(c)
	defer cancelChild()
	called := make(chan struct{})
	context.AfterFunc(c, func() { close(called) })
	stopped := c.AfterFunc(func() { t.Error("a stopped function was called") })
	require.True(t, stopped())
	require.False(t, stopped(), "stop reports once")
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the derived context did not end at the deadline")
	}
	require.ErrorIs(t, child.Err(), context.DeadlineExceeded)
	select {
	case <-called:
	case <-time.After(5 * time.Second):
		t.Fatal("context.AfterFunc was not called")
	}
	late := make(chan struct{})
	stop := c.AfterFunc(func() { close(late) })
	<-late
	require.False(t, stop())
	c.finish()
}
