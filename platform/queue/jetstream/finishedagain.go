package jetstream

import (
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/task"
)

// dropFinished removes m, a message delivered again whose task finished
// with o already (finishedBefore): acked when it succeeded, terminated
// when it was dead-lettered (its dead letter was stored before its
// marker). A failure leaves it to the server, which delivers it again
// after its AckWait, when it is looked up again.
//
// A success removed so tells the WatchFinished function, when the task
// has a source (task.HeaderCompletion): the settlement that recorded the
// success and was cut short (a lost or refused ack, ack_sync's record
// whose answer was lost, a process killed before it told the source)
// may not have told it, and the source, waiting for this outcome, would
// otherwise never hear it. It is told after the ack was sent, at least
// once: again when that ack is lost too, and after a settlement that did
// tell it and lost only its ack.
func (b *Backend) dropFinished(q *queueState, m jetstream.Msg, t *task.Task, o task.Outcome) {
	var err error
	if o == task.Succeeded {
		err = m.Ack()
	} else {
		err = b.term(m, "finished already: "+string(o))
	}
	fields := []zap.Field{zap.String("queue", q.queue), zap.String("task", t.ID), zap.String("outcome", string(o))}
	if err != nil {
		b.log.Warn("jetstream: remove a task delivered again after it finished", append(fields, zap.Error(err))...)
		return
	}
	b.log.Info("jetstream: task delivered again after it finished removed (its settlement was cut short)", fields...)
	if o == task.Succeeded && t.Header(task.HeaderCompletion) != "" {
		b.toldFinished(t)
	}
}
