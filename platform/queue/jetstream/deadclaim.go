package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// A dead letter's claim: which of a re-drive and a purge of it began
// first. A Redrive stores its copy of a dead letter and then deletes it,
// a Purge only deletes it: without a claim, a purge that deleted the
// dead letter after a re-drive stored its copy (the two at once, or a
// re-drive that stopped before its delete: a crash, an outage) counted
// it purged while its task was queued again, and the operator was told
// "purged" of a task that runs.
//
// Before its copy, Redrive claims the dead letter for a re-drive; before
// its delete, Purge claims it for a purge. The claim is a message of the
// stream of finished keys on a subject of the dead letter's own
// (deadClaimSubject), stored only when the subject holds none
// (Nats-Expected-Last-Subject-Sequence 0): the first claim stands, for
// the duplicate window (the stream's MaxAge), and a claim of the other
// kind leaves the dead letter to it. A claim of the same kind goes on:
// two re-drives at once store one copy (its Nats-Msg-Id), two purges
// delete it once. A claim names its dead letter's time too (claimOf): a
// claim left by a dead letter of an earlier dead-letter stream with the
// same sequence (the stream deleted and set up again) is replaced.
//
// A claim is no proof of what followed it: a re-drive that stopped
// between its claim and its copy leaves the dead letter claimed but not
// queued again; it is not purged until the claim ends with the window
// (a re-drive of it goes on and queues it). Past the window, the claim
// is gone with the copy's Nats-Msg-Id: a dead letter left beside its
// queued copy longer than that (a re-drive that stopped before its
// delete, the copy not delivered since) is found by its copy in the work
// stream instead (queuedTasks: its copy's Nats-Msg-Id, within the
// stream's first maxFindScan messages).

// Claim kinds (the claim's data).
const (
	claimRedrive = "redrive"
	claimPurge   = "purge"
)

// errRedriveBegun is why Purge leaves a dead letter a re-drive claimed.
var errRedriveBegun = errors.New("a re-drive of it began within the duplicate window: not purged (its task is queued again, or is once that re-drive is repeated)")

// errPurgeBegun is why Redrive leaves a dead letter a purge claimed.
var errPurgeBegun = errors.New("a purge of it began within the duplicate window: not re-driven")

// deadClaimSubject is the subject of the claim of the dead letter at seq
// of the dead-letter stream, among qn's markers: "claim-<seq>", which no
// marker's subject (32 hex digits) is.
func (qn queueNames) deadClaimSubject(seq uint64) string {
	return qn.donePrefix + "claim-" + strconv.FormatUint(seq, 10)
}

// claimDead claims the dead letter m of qn for kind and reports whether
// the claim stands: stored now, or one of the same kind stored before. A
// claim of the other kind reports false. The claim names the dead letter
// by its time too (claimData): the dead-letter stream deleted and set up
// again numbers its dead letters from 1 once more, and a claim of a dead
// letter of the earlier stream with m's sequence, still within the
// window, is no claim of m: it is replaced, not obeyed. A claim that
// finds no stream (the stream of finished keys lost on the server) sets
// the backend's streams up again (awaitRestore) and is made once more.
func (b *Backend) claimDead(ctx context.Context, qn queueNames, m deadMsg, kind string) (bool, error) {
	subject := qn.deadClaimSubject(m.seq)
	data := claimData(m, kind)
	var last uint64 // the sequence of the claim replaced (0: none)
	restored := false
	for range 4 {
		_, err := b.js.Publish(ctx, subject, data, jetstream.WithExpectLastSequencePerSubject(last))
		if err == nil {
			return true, nil
		}
		if storeGone(err) && !restored {
			// The stream of finished keys was lost on the server: set
			// up again, as for any other publish of the backend.
			restored = true
			if rerr := b.awaitRestore(ctx); rerr != nil {
				return false, fmt.Errorf("claim dead letter %d for a %s: %w; %w", m.seq, kind, err, rerr)
			}
			continue
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || (apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence &&
			apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return false, fmt.Errorf("claim dead letter %d for a %s: %w", m.seq, kind, err)
		}
		c, err := b.lastDone(ctx, subject)
		if isMsgNotFound(err) {
			last = 0
			continue // aged out since: claim it again
		}
		if err != nil {
			return false, fmt.Errorf("read the claim of dead letter %d: %w", m.seq, err)
		}
		had, of, _ := strings.Cut(string(c.Data), "\n")
		if of == claimOf(m) {
			return had == kind, nil
		}
		last = c.Sequence // another dead letter's, of an earlier stream
	}
	return false, fmt.Errorf("claim dead letter %d for a %s: its claim changed while claimed", m.seq, kind)
}

// claimData is the data of m's claim for kind: the kind, a line break
// and claimOf(m).
func claimData(m deadMsg, kind string) []byte {
	return []byte(kind + "\n" + claimOf(m))
}

// claimOf names the dead letter m among those a dead-letter stream
// stored at its sequence: its time (the one it keeps, or the server's
// for a message that does not decode), to the nanosecond.
func claimOf(m deadMsg) string {
	return strconv.FormatInt(m.dl.At.UnixNano(), 10)
}

// queuedTasks returns the sequences of the dead letters in picked whose
// re-driven copy is in qn's work stream: a copy a re-drive stored and
// then could not delete the dead letter (a failed marker or delete, a
// crash), not delivered since (its delivery deletes the dead letter:
// dropRedriven). Past the duplicate window neither the copy's Nats-Msg-Id
// nor the dead letter's claim tells of it: Redrive queued the task a
// second time, and Purge counted purged a dead letter whose task runs.
// A copy is known by its Nats-Msg-Id (redrivenFrom: the dead letter's
// sequence) and its task (the dead letter's id and key), as dropRedriven
// knows it: the task's own message, left in the work stream beside its
// dead letter (a term lost), is no copy, and a Redrive that took it for
// one deleted the dead letter and queued nothing. It reads the work
// stream as FindTasks does (findQueued: at most maxFindScan messages; a
// copy beyond them is not found).
func (b *Backend) queuedTasks(ctx context.Context, qn queueNames, picked []deadMsg) (map[uint64]bool, error) {
	want := make(map[uint64]*task.Task, len(picked)) // dead-letter seq -> its task
	for _, m := range picked {
		if m.bad == nil {
			want[m.seq] = m.dl.Task
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	var mu sync.Mutex // match runs on the reading goroutines
	queued := make(map[uint64]bool)
	match := func(raw *jetstream.RawStreamMsg, t *task.Task) bool {
		seq, ok := redrivenFrom(raw.Header.Get(hdrMsgID))
		if !ok || want[seq] == nil || t.ID != want[seq].ID || t.Key != want[seq].Key {
			return false // another task, or a key that merely ends like a copy's id
		}
		mu.Lock()
		queued[seq] = true
		mu.Unlock()
		return false // nothing to list
	}
	if err := b.findQueued(ctx, qn, match, &queue.TaskSearch{}); err != nil {
		return nil, err
	}
	return queued, nil
}

// errTaskQueued is why Purge leaves a dead letter whose task is queued
// again (queuedTasks).
var errTaskQueued = errors.New("its task is queued again (a re-drive's copy; its delivery deletes the dead letter): not purged")
