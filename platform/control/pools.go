package control

import (
	"errors"
	"net/http"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/lifecycle"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/worker"
)

// Pool is one pool's state (GET /admin/v1/pools).
type Pool struct {
	Queue string `json:"queue"`
	// State is the pool's component state: running, paused, degraded,
	// draining, stopped, ... A pool is degraded while it is stalled
	// (StallAfter), after a Lease failed until leasing works again, and
	// while its backend stays unreachable (its probes failed for
	// UnreachableAfter while a Lease waited: a JetStream Lease waits out
	// an outage instead of failing); Stats.LastError says why.
	State lifecycle.State `json:"state"`
	// Configured is the concurrency from the configuration.
	Configured int `json:"configured_size"`
	// Override is what an operator changed (nil: nothing).
	Override *queue.PoolOverride `json:"override,omitempty"`
	// OverridesDurable says whether overrides outlive a restart (false on
	// the memory backend).
	OverridesDurable bool         `json:"overrides_durable"`
	Stats            worker.Stats `json:"stats"`
}

func (a *API) pool(queue string) (Pool, error) {
	p, ok := a.rt.Pool(queue)
	if !ok {
		return Pool{}, status(http.StatusNotFound, "no pool for queue %q", queue)
	}
	st := p.Stats()
	out := Pool{Queue: queue, State: p.State(), Configured: p.Config().Concurrency,
		OverridesDurable: a.rt.OverridesDurable(), Stats: st, Override: st.Override}
	return out, nil
}

func (a *API) listPools(w http.ResponseWriter, _ *http.Request) error {
	out := []Pool{}
	for _, p := range a.rt.Pools() {
		pl, err := a.pool(p.Queue())
		if err != nil {
			return err
		}
		out = append(out, pl)
	}
	admin.WriteJSON(w, http.StatusOK, map[string]any{"pools": out})
	return nil
}

func (a *API) getPool(w http.ResponseWriter, r *http.Request) error {
	pl, err := a.pool(r.PathValue("queue"))
	if err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusOK, pl)
	return nil
}

// controlPool applies change to the pool's override, audits it and
// answers with the pool.
func (a *API) controlPool(w http.ResponseWriter, r *http.Request, action string, params map[string]any, change func(*queue.PoolOverride) error) error {
	q := r.PathValue("queue")
	_, err := a.rt.ControlPool(r.Context(), q, change)
	e := admin.AuditEntry{Action: action, Target: "pool/" + q, Params: params}
	if err != nil {
		// A failure is in effect nowhere (see worker.Runtime.ControlPool),
		// unless the override store could not tell whether it saved it.
		e.Result, e.Error = admin.AuditFailed, err.Error()
		if errors.Is(err, queue.ErrOutcomeUnknown) {
			e.Result = admin.AuditUnknown
		}
		admin.Audit(r, e)
		return err
	}
	e.Result = admin.AuditOK // in effect, whatever the answer below
	admin.Audit(r, e)
	pl, err := a.pool(q)
	if err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusOK, pl)
	return nil
}

func (a *API) pausePool(w http.ResponseWriter, r *http.Request) error {
	return a.controlPool(w, r, "pool.pause", nil, func(o *queue.PoolOverride) error { o.Paused = true; return nil })
}

func (a *API) resumePool(w http.ResponseWriter, r *http.Request) error {
	return a.controlPool(w, r, "pool.resume", nil, func(o *queue.PoolOverride) error { o.Paused = false; return nil })
}

// Resize is the body of POST /admin/v1/pools/{queue}/resize.
type Resize struct {
	Size int `json:"size"`
}

func (a *API) resizePool(w http.ResponseWriter, r *http.Request) error {
	var body Resize
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.Size < 1 || body.Size > worker.MaxConcurrency {
		return status(http.StatusBadRequest, "size %d: want 1 to %d", body.Size, worker.MaxConcurrency)
	}
	return a.controlPool(w, r, "pool.resize", map[string]any{"size": body.Size}, func(o *queue.PoolOverride) error {
		o.Size = body.Size
		return nil
	})
}

func (a *API) clearPool(w http.ResponseWriter, r *http.Request) error {
	return a.controlPool(w, r, "pool.override.clear", nil, func(o *queue.PoolOverride) error {
		*o = queue.PoolOverride{}
		return nil
	})
}
