package memory

import (
	"context"
	"fmt"
	"maps"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

var _ queue.TaskFinder = (*Backend)(nil)

// memorySearched is where FindTasks looks.
var memorySearched = []string{"ready tasks", "delayed tasks", "tasks in flight", "dead letters"}

// FindTasks finds the tasks of queue name with l's id or key wherever the
// backend keeps them: ready, delayed, in flight, dead-lettered, and (by
// key only) finished within Options.DedupWindow, as its de-duplication
// index remembers it. An id is found by a scan of the queue's tasks; a
// key through the index, where a key a producer gave and a generated one
// written the same are two keys (both are found).
func (b *Backend) FindTasks(_ context.Context, name string, l queue.TaskLookup) (queue.TaskSearch, error) {
	if err := l.Check(); err != nil {
		return queue.TaskSearch{}, err
	}
	if err := b.open(); err != nil {
		return queue.TaskSearch{}, err
	}
	s := queue.TaskSearch{Found: []queue.FoundTask{}, Searched: append([]string(nil), memorySearched...)}
	if l.Key != "" {
		s.Searched = append(s.Searched, fmt.Sprintf("finished keys (remembered for %s, queue.memory.dedup_window)", b.opts.DedupWindow))
	} else {
		s.NotSearched = []string{"finished tasks: the backend remembers them by key only (look up by key)"}
	}
	q := b.lookup(name)
	if q == nil {
		return s, nil
	}
	now := b.nanos()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.advance(now)
	if l.Key != "" {
		// The key a producer gave, and the generated key written the
		// same, if it can be one: two tasks may hold them.
		for _, made := range [...]bool{false, true} {
			if _, ok := genSeq(l.Key); made && !ok {
				break // not an id of this process: never generated here
			}
			ref, ok := q.keys.get(l.Key, made, q.keys.hash(l.Key, made))
			switch {
			case !ok:
			case ref.e != nil:
				s.Found = append(s.Found, b.found(ref.e))
			case ref.until > now && ref.outcome.Final():
				st := queue.StateSucceeded
				if ref.outcome == task.DeadLettered {
					st = queue.StateDead
				}
				s.Found = append(s.Found, queue.FoundTask{State: st, Task: &task.Task{Key: l.Key, Queue: name}, Reason: ref.reason})
			}
		}
		return s, nil
	}
	match := func(e *entry) bool { return e != nil && e.t != nil && e.t.ID == l.ID }
	for i := 0; i < q.ready.n; i++ {
		if e := q.ready.buf[(q.ready.head+i)&(len(q.ready.buf)-1)]; match(e) {
			s.Found = append(s.Found, b.found(e))
		}
	}
	for _, h := range []entryHeap{q.delayed, q.leased} {
		for _, e := range h {
			if match(e) {
				s.Found = append(s.Found, b.found(e))
			}
		}
	}
	for _, e := range q.dead {
		if match(e) {
			s.Found = append(s.Found, b.found(e))
		}
	}
	return s, nil
}

// found describes e, without its payload.
func (b *Backend) found(e *entry) queue.FoundTask {
	t := *e.t
	t.Payload, t.Headers = nil, maps.Clone(e.t.Headers)
	f := queue.FoundTask{Task: &t, PayloadSize: len(e.t.Payload), Attempts: e.attempts}
	switch e.state {
	case stReady:
		f.State = queue.StateReady
	case stDelayed:
		f.State, f.DueAt = queue.StateDelayed, b.timeOf(e.due)
	case stLeased:
		f.State, f.DueAt = queue.StateInFlight, b.timeOf(e.due)
	case stDead:
		f.State, f.Reason, f.At = queue.StateDead, e.reason, e.deadAt
	}
	return f
}
