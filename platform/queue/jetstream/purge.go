package jetstream

import (
	"context"
	"errors"
	"fmt"
)

// Purge deletes the selected dead letters and returns how many went.
// Each is claimed for a purge first (deadclaim.go): one a re-drive
// claimed within the duplicate window is left to it, not deleted nor
// counted, and reported in the error as a queue.DeadLetterError
// (errRedriveBegun), as its task is queued again (or is once that
// re-drive is repeated). So is one whose re-driven copy the work stream
// holds when the call begins (queuedTasks, errTaskQueued: a copy stored
// by a re-drive that then failed, found past the window too): its
// delivery deletes it. A failure that stops the call is the error's last
// part, naming the task it stopped at, and no DeadLetterError.
func (b *Backend) Purge(ctx context.Context, queueName string, ids ...string) (int, error) {
	if err := b.usable(); err != nil {
		return 0, err
	}
	qn, err := b.names.forQueue(queueName)
	if err != nil {
		return 0, err
	}
	var picked []deadMsg
	set := idSet(ids)
	if err := b.scanDead(ctx, qn, func(m deadMsg) bool {
		if set == nil || set[m.dl.Task.ID] {
			t := *m.dl.Task
			t.Payload = nil // only its id and key are needed
			m.dl.Task, m.raw = &t, nil
			picked = append(picked, m)
		}
		return true
	}); err != nil {
		return 0, err
	}
	if len(picked) == 0 {
		return 0, nil
	}
	dead, err := b.lookupDead(ctx)
	if err != nil {
		return 0, err
	}
	queued, err := b.queuedTasks(ctx, qn, picked)
	if err != nil {
		return 0, fmt.Errorf("jetstream: purge dead letters of %q: look for their tasks queued again: %w", qn.queue, err)
	}
	n := 0
	var skipped []error
	for _, m := range picked {
		id := m.dl.Task.ID
		if m.bad == nil && queued[m.seq] {
			skipped = append(skipped, leftDead("purge of", qn.queue, id, errTaskQueued))
			continue
		}
		ok, err := b.claimDead(ctx, qn, m, claimPurge)
		if err != nil {
			return n, errors.Join(append(skipped, stopped("purge of", qn.queue, "at", id, err))...)
		}
		if !ok {
			skipped = append(skipped, leftDead("purge of", qn.queue, id, errRedriveBegun))
			continue
		}
		if err := dead.DeleteMsg(ctx, m.seq); err != nil {
			if isMsgNotFound(err) {
				continue
			}
			return n, errors.Join(append(skipped, stopped("purge of", qn.queue, "at", id, fmt.Errorf("delete dead letter %d: %w", m.seq, err)))...)
		}
		n++
	}
	return n, errors.Join(skipped...)
}
