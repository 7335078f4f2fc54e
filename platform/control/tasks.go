package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// TaskInfo answers a task lookup by id or by key: the tasks found, each
// with its state (ready, delayed, in_flight, succeeded, dead), and
// where the backend looked (Searched) and could not look (NotSearched).
type TaskInfo = queue.TaskSearch

// getTask looks a task up by id wherever the backend can (see
// queue.FindTasks): 404 naming the places searched when it is in none.
func (a *API) getTask(w http.ResponseWriter, r *http.Request) error {
	q, id := r.PathValue("queue"), r.PathValue("id")
	s, err := queue.FindTasks(r.Context(), a.backend, q, queue.TaskLookup{ID: id})
	if err != nil {
		return err
	}
	if len(s.Found) == 0 {
		msg := fmt.Sprintf("task %q not found in queue %q (searched: %s)", id, q, strings.Join(s.Searched, ", "))
		if len(s.NotSearched) > 0 {
			msg += "; not searched: " + strings.Join(s.NotSearched, "; ")
		}
		return status(http.StatusNotFound, "%s", msg)
	}
	admin.WriteJSON(w, http.StatusOK, s)
	return nil
}

// findTasks looks tasks up by key (?key=) wherever the backend can: 200
// with what was found (possibly nothing) and where it looked.
func (a *API) findTasks(w http.ResponseWriter, r *http.Request) error {
	key := r.URL.Query().Get("key")
	if key == "" {
		return status(http.StatusBadRequest, "key is required")
	}
	s, err := queue.FindTasks(r.Context(), a.backend, r.PathValue("queue"), queue.TaskLookup{Key: key})
	if err != nil {
		return err
	}
	if len(s.Found) == 0 {
		if err := a.knownQueue(r, r.PathValue("queue")); err != nil {
			return err
		}
	}
	admin.WriteJSON(w, http.StatusOK, s)
	return nil
}

// Enqueue is the body of POST /admin/v1/tasks: a task of a kind that has
// a route, with a JSON payload (kept as sent) and optionally its key.
type Enqueue struct {
	Kind    string          `json:"kind"`
	Key     string          `json:"key,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Enqueued answers POST /admin/v1/tasks (201). When the backend cannot
// tell whether it stored the task (queue.ErrOutcomeUnknown: a publish
// whose acknowledgement was lost), the answer is 504 naming the task's id
// and key, and the audit records "unknown": enqueueing it again with the
// same key is safe. A task whose key is held
// already (queued, delayed, in flight, or finished within the backend's
// de-duplication window) is not stored, and the answer is 409 naming
// what holds the key, not Enqueued.
type Enqueued struct {
	ID    string `json:"id"`
	Key   string `json:"key"`
	Kind  string `json:"kind"`
	Queue string `json:"queue"`
}

func (a *API) enqueue(w http.ResponseWriter, r *http.Request) error {
	var body Enqueue
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.Kind == "" {
		return status(http.StatusBadRequest, "kind is required")
	}
	if _, ok := a.rt.Router().Route(body.Kind); !ok {
		return status(http.StatusBadRequest, "no route for kind %q (known kinds: %v)", body.Kind, a.rt.Router().Kinds())
	}
	t := &task.Task{Kind: body.Kind, Key: body.Key, Payload: []byte(body.Payload)}
	err := a.rt.Producer().Enqueue(r.Context(), t)
	e := admin.AuditEntry{Action: "task.enqueue", Target: "kind/" + body.Kind,
		Params: map[string]any{"key": body.Key, "payload_size": len(body.Payload)}}
	if errors.Is(err, queue.ErrOutcomeUnknown) {
		// The publish may have been stored: neither failed nor enqueued.
		e.Target = "queue/" + t.Queue
		e.Params["id"] = t.ID
		err = status(http.StatusGatewayTimeout, "outcome unknown: task %s (key %q) on queue %q may or may not be stored (%v); "+
			"enqueueing it again with the same key is safe: plba de-duplicates by key", t.ID, t.Key, t.Queue, err)
		e.Result, e.Error = admin.AuditUnknown, err.Error()
		admin.Audit(r, e)
		return err
	}
	if err != nil {
		e.Result, e.Error = admin.AuditFailed, err.Error()
		admin.Audit(r, e)
		return err
	}
	e.Target = "queue/" + t.Queue
	if held := heldKey(t); held != nil {
		e.Result, e.Error = admin.AuditFailed, held.Error()
		admin.Audit(r, e)
		return held
	}
	e.Params["id"] = t.ID
	admin.Audit(r, e)
	admin.WriteJSON(w, http.StatusCreated, Enqueued{ID: t.ID, Key: t.Key, Kind: t.Kind, Queue: t.Queue})
	return nil
}

// heldKey returns a 409 when the backend accepted t but stored nothing,
// t's key being held already (a producer's Enqueue drops such a task
// without an error, and marks it; see queue.Producer): by a task that
// finished within the de-duplication window (task.Finished; a dead letter
// within the window too), or by a task still queued, delayed or in flight
// (task.Held, naming that task when the backend knows it). It returns nil
// when t was stored: t carries neither mark. It looks nothing up: the
// backend's marks say what its Enqueue did.
func heldKey(t *task.Task) error {
	if o, reason, ok := task.Finished(t); ok {
		what := string(o)
		if reason != "" {
			what += ": " + reason
		}
		msg := fmt.Sprintf("key %q: a task with this key already finished (%s) within the backend's de-duplication window: nothing enqueued", t.Key, what)
		if o == task.DeadLettered {
			msg += "; re-drive its dead letter, if it is still kept, to run it again"
		}
		return status(http.StatusConflict, "%s", msg)
	}
	if by, ok := task.Held(t); ok {
		holder := "a task with this key"
		if by != "" {
			holder = fmt.Sprintf("task %s with this key", by)
		}
		return status(http.StatusConflict, "key %q: %s is queued, delayed or in flight already: nothing enqueued; "+
			"look it up with GET %s/queues/%s/tasks?key=%s", t.Key, holder, Prefix, url.PathEscape(t.Queue), url.QueryEscape(t.Key))
	}
	return nil
}
