package imap

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
)

// QueueHeadroom is what a message must leave free of the queue's max
// payload for its task's headers (see CheckQueueLimit).
const QueueHeadroom = 64 << 10

// SetQueueMaxPayload tells the source the largest task the queue backend
// carries (0: unknown), for the reason given when the queue refuses a
// message as too large. The fx constructor New sets it from a backend
// with a MaxPayload method once the backend has started.
func (s *Source) SetQueueMaxPayload(n int64) { s.queueMax.Store(n) }

// CheckQueueLimit reports, as a *ConfigError on max_message_size, a
// MaxMessageSize that a queue carrying at most maxPayload bytes per task
// (0: no limit known) cannot carry with the task's headers
// (QueueHeadroom).
func CheckQueueLimit(cfg Config, maxPayload int64) error {
	if maxPayload <= 0 || cfg.MaxMessageSize+QueueHeadroom <= maxPayload {
		return nil
	}
	return &ConfigError{Key: "max_message_size", Msg: fmt.Sprintf(
		"%d (%s) is more than the queue backend can carry: its max payload is %d (%s), of which %s is kept for the task's headers; set at most %d",
		cfg.MaxMessageSize, mib(cfg.MaxMessageSize), maxPayload, mib(maxPayload), mib(QueueHeadroom), maxPayload-QueueHeadroom)}
}

// permanentEmit reports whether err refuses a task for good: the same
// task will never be accepted.
func permanentEmit(err error) bool {
	return errors.Is(err, queue.ErrTooLarge) || errors.Is(err, queue.ErrInvalidTask)
}

// emitTasks emits tasks. When the queue refuses the batch for good, each
// task is emitted on its own (those already stored are de-duplicated by
// key), and each one the queue refuses for good is replaced by its
// stand-in (task.Rejected), carrying the reason: the pool dead-letters it
// and the completion moves the message to the failed folder, so one mail
// that cannot become a task does not stop the mailbox. A task completed
// during the batch's Emit (a duplicate of a finished one, which the
// emitter tells at once, or one a worker finished already) is not
// emitted again: its outcome would be told a second time.
func (s *Source) emitTasks(ctx context.Context, emit source.Emitter, tasks []*task.Task) error {
	err := emit.Emit(ctx, tasks...)
	if err == nil || !permanentEmit(err) || ctx.Err() != nil {
		return err
	}
	for _, t := range tasks {
		if s.told(t.Key) {
			continue
		}
		err := emit.Emit(ctx, t)
		if err == nil {
			continue
		}
		if !permanentEmit(err) {
			return err
		}
		reason := s.rejectReason(t, err)
		if err := emit.Emit(ctx, task.Rejected(t, reason)); err != nil {
			return fmt.Errorf("emit the stand-in of a refused task: %w", err)
		}
		s.mu.Lock()
		s.st.Rejected++
		s.mu.Unlock()
		s.log.Warn("the queue refuses the message for good: dead-lettered with the reason, to move to the failed folder",
			zap.String("uid", t.Header(HeaderUID)), zap.String("message_id", t.Header(HeaderMessageID)),
			zap.String("reason", reason), zap.Error(err))
	}
	return nil
}

// told reports whether the task of key, emitted by the running
// emitMessages (in flight before its Emit), was completed since: its
// completion is queued (completing) or applied (no longer in flight).
func (s *Source) told(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.inflight[key]
	return !ok || e.completing
}

// rejectReason says why the queue refused t, for its dead letter.
func (s *Source) rejectReason(t *task.Task, err error) string {
	size, _ := strconv.ParseInt(t.Header(HeaderSize), 10, 64)
	if size == 0 {
		size = int64(len(t.Payload))
	}
	if errors.Is(err, queue.ErrTooLarge) {
		if max := s.queueMax.Load(); max > 0 {
			return fmt.Sprintf("message of %s exceeds the queue's max payload of %s", mib(size), mib(max))
		}
		return fmt.Sprintf("message of %s is too large for the queue: %v", mib(size), err)
	}
	return fmt.Sprintf("the queue refuses the message's task as invalid: %v", err)
}

// mib formats n bytes in MiB with one decimal ("9.1 MiB", "8 MiB").
func mib(n int64) string {
	s := strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64)
	if len(s) > 2 && s[len(s)-2:] == ".0" {
		s = s[:len(s)-2]
	}
	return s + " MiB"
}
