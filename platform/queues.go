package platform

import (
	"fmt"
	"sort"
	"strings"

	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// checkQueues reports the configuration that contradicts the routes, once
// the routes are known (the runtime is built; nothing has started):
//
//   - workers.<name> for a queue that no route uses (a typo such as
//     workers.mailordr would otherwise create a pool, and on JetStream a
//     stream, while the real queue ran with the defaults); the entry
//     "default" is the defaults of every pool and always allowed;
//   - on JetStream, a queue.jetstream.max_deliver that is not above the
//     attempts a route's tasks may take (workers.<queue>.max_attempts, or
//     the route's own MaxAttempts): the server counts every delivery
//     against max_deliver, also one given back because it came before the
//     task's NotBefore (every delayed task on a server without message
//     schedules or on a bounded stream, or a schedule that fired early).
//     With no delivery to spare, such a task lost its last attempt, and
//     with max_deliver 1 it was dead-lettered without ever running.
//
// The result is a *config.Error keyed like the configuration's own
// problems (the host exits 2).
func checkQueues(rt *worker.Runtime, qc QueueConfig, js jetstream.Config, wc worker.Config) error {
	router := rt.Router()
	known := map[string]bool{task.DefaultQueue: true}
	for _, q := range router.Queues() {
		known[q] = true
	}
	var ps config.Problems
	names := make([]string, 0, len(wc))
	for n := range wc {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !known[n] {
			ps.Add(WorkersSection+"."+n, "no route uses queue %q (known queues: %s)", n, strings.Join(sortedKeys(known), ", "))
		}
	}
	if qc.Backend == BackendJetStream {
		if md := js.WithDefaults().MaxDeliver; md > 0 {
			ps = append(ps, maxDeliverProblems(router, wc, md)...)
		}
	}
	return ps.Err()
}

// maxDeliverProblems lists the routes whose attempts leave max_deliver no
// delivery to spare for one that comes before the task's NotBefore.
func maxDeliverProblems(router *worker.Router, wc worker.Config, maxDeliver int) config.Problems {
	key := JetStreamSection + ".max_deliver"
	var ps config.Problems
	seen := map[string]bool{}
	for _, kind := range router.Kinds() {
		r, _ := router.Route(kind)
		q := r.QueueName()
		attempts, from := wc.For(q).MaxAttempts, fmt.Sprintf("%s.%s.max_attempts", WorkersSection, q)
		if r.MaxAttempts > 0 {
			attempts, from = r.MaxAttempts, fmt.Sprintf("the max attempts of the route for kind %q", kind)
		}
		if attempts >= maxDeliver && !seen[from] {
			seen[from] = true
			ps.Add(key, "%d is not above %s (%d): the server counts a delivery that came before a delayed task's time as one of max_deliver, so a task of kind %q "+
				"could be dead-lettered before its last attempt (or, with max_deliver 1, without running); set %s to at least %d or lower %s.%s.max_attempts",
				maxDeliver, from, attempts, kind, key, attempts+1, WorkersSection, q)
		}
	}
	return ps
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
