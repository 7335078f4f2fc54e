package control

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/queue"
)

// Queue is one queue's counts and rates (GET /admin/v1/queues and
// /admin/v1/queues/{queue}). The counts come from the backend (every
// process sharing it); the rates from this process: tasks it enqueued,
// and tasks its pool finished.
type Queue struct {
	queue.Stats
	Rates
	// Pool is the state of this process's pool of the queue, if it has
	// one: its component state, as GET /admin/v1/pools says it (running,
	// paused, degraded, draining, stopped, ...).
	Pool string `json:"pool,omitempty"`
}

// sample reads the cumulative counters of every queue.
func (a *API) sample() map[string]counts {
	out := map[string]counts{}
	for q, n := range a.rt.Producer().Enqueued() {
		c := out[q]
		c.enqueued = n
		out[q] = c
	}
	for _, p := range a.rt.Pools() {
		st := p.Stats()
		c := out[p.Queue()]
		c.succeeded, c.failed = st.Succeeded, st.Failed
		out[p.Queue()] = c
	}
	return out
}

// queueNames lists the queues the backend knows and those with a pool.
func (a *API) queueNames(r *http.Request) ([]string, error) {
	names, err := a.backend.Queues(r.Context())
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
	}
	for _, p := range a.rt.Pools() {
		if !seen[p.Queue()] {
			seen[p.Queue()] = true
			names = append(names, p.Queue())
		}
	}
	sort.Strings(names)
	return names, nil
}

// knownQueue answers 404 naming the queue when neither the backend nor
// a pool of this process knows name (a misspelt queue): its dead letters
// and tasks would read as none. The routes that find nothing ask it, so
// that what a queue holds never waits for the lookup.
func (a *API) knownQueue(r *http.Request, name string) error {
	names, err := a.queueNames(r)
	if err != nil {
		return err
	}
	if i := sort.SearchStrings(names, name); i == len(names) || names[i] != name {
		known := strings.Join(names, ", ")
		if known == "" {
			known = "none"
		}
		return status(http.StatusNotFound, "no queue %q (queues: %s)", name, known)
	}
	return nil
}

func (a *API) queueInfo(r *http.Request, name string) (Queue, error) {
	st, err := a.backend.Stats(r.Context(), name)
	if err != nil {
		return Queue{}, err
	}
	q := Queue{Stats: st, Rates: a.rates.rate(name, time.Now(), a.sample()[name])}
	if p, ok := a.rt.Pool(name); ok {
		q.Pool = string(p.State())
	}
	return q, nil
}

func (a *API) listQueues(w http.ResponseWriter, r *http.Request) error {
	names, err := a.queueNames(r)
	if err != nil {
		return err
	}
	out := make([]Queue, 0, len(names))
	for _, n := range names {
		q, err := a.queueInfo(r, n)
		if err != nil {
			return err
		}
		out = append(out, q)
	}
	admin.WriteJSON(w, http.StatusOK, map[string]any{"queues": out})
	return nil
}

func (a *API) getQueue(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("queue")
	if err := a.knownQueue(r, name); err != nil {
		return err
	}
	q, err := a.queueInfo(r, name)
	if err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusOK, q)
	return nil
}
