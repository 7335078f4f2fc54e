package control

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/task"
)

// TaskInfo answers a task lookup.
type TaskInfo struct {
	// State is "dead" (the task is a dead letter of the queue).
	State string     `json:"state"`
	Dead  DeadDetail `json:"dead"`
}

// getTask looks a task up by id. The backends can look up dead letters
// only (not tasks waiting or running): a task that is not a dead letter is
// 404 saying so.
func (a *API) getTask(w http.ResponseWriter, r *http.Request) error {
	q, id := r.PathValue("queue"), r.PathValue("id")
	d, err := a.backend.GetDead(r.Context(), q, id)
	if errors.Is(err, queue.ErrNotFound) {
		return status(http.StatusNotFound, "task %q is not a dead letter of queue %q (the backend cannot look up tasks waiting or running)", id, q)
	}
	if err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusOK, TaskInfo{State: "dead", Dead: detail(d)})
	return nil
}

// TaskList answers a lookup by key.
type TaskList struct {
	// State is "dead": the tasks listed are dead letters of the queue.
	State string        `json:"state"`
	Items []DeadSummary `json:"items"`
}

// findTasks looks tasks up by key (?key=): the dead letters of the queue
// with that key (the backends cannot look up tasks waiting or running).
func (a *API) findTasks(w http.ResponseWriter, r *http.Request) error {
	key := r.URL.Query().Get("key")
	if key == "" {
		return status(http.StatusBadRequest, "key is required")
	}
	out := TaskList{State: "dead", Items: []DeadSummary{}}
	q := queue.DeadQuery{Key: key, Limit: queue.MaxDeadLimit}
	for {
		page, err := a.backend.QueryDead(r.Context(), r.PathValue("queue"), q)
		if err != nil {
			return err
		}
		for _, d := range page.Items {
			out.Items = append(out.Items, summary(d))
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	admin.WriteJSON(w, http.StatusOK, out)
	return nil
}

// Enqueue is the body of POST /admin/v1/tasks: a task of a kind that has
// a route, with a JSON payload (kept as sent) and optionally its key.
type Enqueue struct {
	Kind    string          `json:"kind"`
	Key     string          `json:"key,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Enqueued answers POST /admin/v1/tasks.
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
	if err != nil {
		e.Result, e.Error = admin.AuditFailed, err.Error()
		admin.Audit(r, e)
		return err
	}
	e.Target = "queue/" + t.Queue
	e.Params["id"] = t.ID
	admin.Audit(r, e)
	admin.WriteJSON(w, http.StatusCreated, Enqueued{ID: t.ID, Key: t.Key, Kind: t.Kind, Queue: t.Queue})
	return nil
}
