package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

func idSet(ids []string) map[string]bool {
	if len(ids) == 0 {
		return nil
	}
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// Redrive republishes the selected dead letters to their queue as new
// messages (so they start again at attempt 1, ready now), records each
// one's key as queued again (done.go: the key's dead-letter marker would
// otherwise mark a duplicate emitted meanwhile as dead-lettered, and its
// source would be told an outcome the re-driven task has not had), then
// deletes them from the dead-letter stream. A crash between the steps may
// redrive a task twice, as at-least-once allows, or leave the old marker,
// which then marks a duplicate as the dead letter it was.
//
// A publish no stream answered (the work stream was deleted on the
// server) sets the queue up again, as Enqueue does (restore), once per
// call, and is tried once more.
func (b *Backend) Redrive(ctx context.Context, queueName string, ids ...string) (int, error) {
	if err := b.usable(); err != nil {
		return 0, err
	}
	q, err := b.queue(queueName)
	if err != nil {
		return 0, err
	}
	var picked []deadMsg
	set := idSet(ids)
	if err := b.scanDead(ctx, q.queueNames, func(m deadMsg) bool {
		if set == nil || set[m.dl.Task.ID] {
			picked = append(picked, m)
		}
		return true
	}); err != nil {
		return 0, err
	}
	if len(picked) == 0 {
		return 0, nil
	}
	if err := q.ensure(ctx, b); err != nil {
		return 0, err
	}
	dead, err := b.lookupDead(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var skipped []error
	restored := false // the queue was set up again (publishWork)
	for _, m := range picked {
		t := m.dl.Task
		t.Attempt, t.NotBefore = 0, time.Time{}
		msgID := msgIDOf(t.Key) + "-redrive-" + strconv.FormatUint(m.seq, 10)
		// The marker the key has now (the dead letter's, when within
		// the window), which the re-driven task's own settlement may
		// replace as soon as it is published.
		prev, succeeded, err := b.doneMarker(ctx, q, t.Key)
		if err != nil {
			return n, fmt.Errorf("jetstream: redrive task %s to %q: %w", t.ID, q.queue, err)
		}
		if succeeded {
			// The task ran again after its dead letter and succeeded (a
			// re-drive that stopped before it deleted the dead letter, or
			// a dead letter stored by an earlier version whose work
			// message was not terminated): re-driving would run it once
			// more. Left as it is, and said.
			skipped = append(skipped, fmt.Errorf("jetstream: redrive task %s to %q: %w", t.ID, q.queue, errSucceededSince))
			continue
		}
		// Re-driven by an operator, the task is remembered by its key
		// once it finishes, whoever chose the key.
		pm := encodeTask(t, msgSpec{subject: q.subject, msgID: msgID, keyed: true})
		if err := b.publishWork(ctx, q, pm, &restored); err != nil {
			return n, fmt.Errorf("jetstream: redrive task %s to %q: %w", t.ID, q.queue, err)
		}
		if err := b.markQueuedAgain(ctx, q, t.Key, prev); err != nil {
			return n, fmt.Errorf("jetstream: redrive task %s to %q: %w", t.ID, q.queue, err)
		}
		if err := dead.DeleteMsg(ctx, m.seq); err != nil && !isNotFound(err) {
			return n, fmt.Errorf("jetstream: delete dead letter %s: %w", t.ID, err)
		}
		n++
	}
	return n, errors.Join(skipped...)
}

// errSucceededSince is why Redrive leaves a dead letter whose task's key
// has finished succeeded since.
var errSucceededSince = errors.New("its key is recorded as succeeded since it was dead-lettered: not re-driven (it would run again; purge the dead letter)")

// Purge deletes the selected dead letters and returns how many went.
func (b *Backend) Purge(ctx context.Context, queueName string, ids ...string) (int, error) {
	if err := b.usable(); err != nil {
		return 0, err
	}
	qn, err := b.names.forQueue(queueName)
	if err != nil {
		return 0, err
	}
	var seqs []uint64
	set := idSet(ids)
	if err := b.scanDead(ctx, qn, func(m deadMsg) bool {
		if set == nil || set[m.dl.Task.ID] {
			seqs = append(seqs, m.seq)
		}
		return true
	}); err != nil {
		return 0, err
	}
	dead, err := b.lookupDead(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, seq := range seqs {
		if err := dead.DeleteMsg(ctx, seq); err != nil {
			if isNotFound(err) {
				continue
			}
			return n, fmt.Errorf("jetstream: purge dead letter %d of %q: %w", seq, qn.queue, err)
		}
		n++
	}
	return n, nil
}
