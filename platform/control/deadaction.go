package control

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/queue"
)

// DeadAction is the body of a re-drive or purge: the dead letters with
// IDs (at most MaxDeadActionIDs), or (without IDs) every one matching Filter; an empty Filter needs
// All, so that everything is never selected by mistake. DryRun only
// counts.
type DeadAction struct {
	IDs    []string   `json:"ids,omitempty"`
	Filter DeadFilter `json:"filter,omitzero"`
	All    bool       `json:"all,omitempty"`
	DryRun bool       `json:"dry_run,omitempty"`
}

// DeadFilter selects dead letters like the list's query parameters.
type DeadFilter struct {
	Kind   string    `json:"kind,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	Until  time.Time `json:"until,omitzero"`
}

func (f DeadFilter) empty() bool { return f == DeadFilter{} }

// DeadResult answers a re-drive or purge.
type DeadResult struct {
	DryRun bool `json:"dry_run"`
	// Matched is how many dead letters the selection found.
	Matched int `json:"matched"`
	// Done is how many the backend re-drove or purged (0 on a dry run).
	Done int `json:"done"`
	// Failed are the selected ids that were not done, each with its own
	// reason: the backend's for it, or why the action stopped.
	Failed []Failure `json:"failed"`
	// Gone is how many selected dead letters were no longer dead
	// letters after the action without the backend counting them done:
	// another call re-drove or purged them between the selection and the
	// action (or the backend did them and then failed before saying so).
	// This call did not do them.
	Gone int `json:"gone"`
	// Unknown is how many selected dead letters the backend failed on
	// while what it did with them could not be checked: done or not, no
	// one can say from here (list the dead letters to see). The action
	// stopped there.
	Unknown int `json:"unknown,omitempty"`
	// NotTried is how many selected dead letters the action did not get
	// to: it stopped (Unknown, or the request ended) first.
	NotTried int `json:"not_tried,omitempty"`
	// Error, with a status other than 200, says why the action stopped
	// and how far it got (a client reads it as the error of the call).
	Error string `json:"error,omitempty"`
}

// Failure is an id an action could not do.
type Failure struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

// actionChunk is how many ids one backend call gets.
const actionChunk = 500

func (a *API) redriveDead(w http.ResponseWriter, r *http.Request) error {
	return a.deadAction(w, r, "dlq.redrive", a.backend.Redrive)
}

func (a *API) purgeDead(w http.ResponseWriter, r *http.Request) error {
	return a.deadAction(w, r, "dlq.purge", a.backend.Purge)
}

// deadAction resolves the selection to ids (pages without payloads),
// then hands them to op in chunks. A chunk the backend did not do whole
// is checked: the ids still dead letters are reported failed.
func (a *API) deadAction(w http.ResponseWriter, r *http.Request, action string,
	op func(ctx context.Context, queue string, ids ...string) (int, error)) error {
	qname := r.PathValue("queue")
	var body DeadAction
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if len(body.IDs) == 0 && body.Filter.empty() && !body.All {
		return status(http.StatusBadRequest, "select dead letters: ids, a filter, or all: true")
	}
	if len(body.IDs) > 0 && (!body.Filter.empty() || body.All) {
		return status(http.StatusBadRequest, "select dead letters by ids or by filter, not both")
	}
	if len(body.IDs) > MaxDeadActionIDs {
		return status(http.StatusBadRequest, "%d ids: at most %d per call (split the list, or select by a filter)", len(body.IDs), MaxDeadActionIDs)
	}
	if err := checkRange(body.Filter.Since, body.Filter.Until); err != nil {
		return err
	}
	ctx := r.Context()
	base := queue.DeadQuery{Kind: body.Filter.Kind, Reason: body.Filter.Reason, Since: body.Filter.Since,
		Until: body.Filter.Until, Limit: queue.MaxDeadLimit}
	res := DeadResult{DryRun: body.DryRun, Failed: []Failure{}}
	var ids []string
	selected := map[string]time.Time{} // id -> when the selected dead letter was made
	if len(body.IDs) > 0 {
		for c := range chunks(dedupe(body.IDs), actionChunk) {
			q := base
			q.IDs = c
			got, err := a.collect(ctx, qname, q)
			if err != nil {
				return err
			}
			for _, d := range got {
				selected[d.id] = d.at
			}
		}
		for _, id := range dedupe(body.IDs) {
			if _, ok := selected[id]; ok {
				ids = append(ids, id)
			} else {
				res.Failed = append(res.Failed, Failure{ID: id, Error: "not a dead letter of queue " + qname})
			}
		}
	} else {
		got, err := a.collect(ctx, qname, base)
		if err != nil {
			return err
		}
		for _, d := range got {
			ids = append(ids, d.id)
			selected[d.id] = d.at
		}
	}
	res.Matched = len(ids)
	if res.Matched == 0 {
		if err := a.knownQueue(r, qname); err != nil {
			return err
		}
	}
	params := map[string]any{"ids": len(body.IDs), "filter": body.Filter, "all": body.All, "dry_run": body.DryRun}
	if body.DryRun {
		admin.Audit(r, admin.AuditEntry{Action: action + ".dry_run", Target: "queue/" + qname, Params: params})
		admin.WriteJSON(w, http.StatusOK, res)
		return nil
	}
	run := a.runDeadAction(ctx, qname, ids, selected, op, &res)
	params["matched"], params["done"], params["failed"], params["gone"] = res.Matched, res.Done, len(res.Failed), res.Gone
	if res.Unknown > 0 || res.NotTried > 0 {
		params["unknown"], params["not_tried"] = res.Unknown, res.NotTried
	}
	e := admin.AuditEntry{Action: action, Target: "queue/" + qname, Params: params}
	switch {
	case run.stopped:
		res.Error = fmt.Sprintf("%s stopped after %d of %d done (%d gone, %d failed, %d unknown, %d not tried): %v",
			action, res.Done, res.Matched, res.Gone, len(res.Failed), res.Unknown, res.NotTried, run.err)
		e.Result, e.Error = admin.AuditFailed, res.Error
	case run.err != nil:
		e.Result, e.Error = admin.AuditFailed, run.err.Error()
	case len(res.Failed) > 0:
		e.Result, e.Error = admin.AuditFailed, fmt.Sprintf("%d selected dead letters not done", len(res.Failed))
	case res.Gone > 0:
		e.Result, e.Error = admin.AuditFailed, fmt.Sprintf("%d selected dead letters not done by this call: another call re-drove or purged them meanwhile", res.Gone)
	}
	if e.Result == admin.AuditFailed && res.Done > 0 {
		e.Result = admin.AuditPartial // some done: not a call that did nothing
	}
	admin.Audit(r, e)
	if run.stopped {
		admin.WriteJSON(w, statusOf(run.err), res)
		return nil
	}
	admin.WriteJSON(w, http.StatusOK, res)
	return nil
}

// deadRun is how runDeadAction ended: err is the first error (the
// backend's, the check's, the request's end), stopped says the action
// ended before it had tried and accounted for every id.
type deadRun struct {
	err     error
	stopped bool
}

// checkTimeout bounds the check of which ids are still dead letters
// after a chunk the backend did not do whole; it runs even when the
// request has ended (the client gone), so that the audit says what was
// done.
const checkTimeout = 10 * time.Second

// runDeadAction hands ids to op in chunks and fills res's Done, Failed,
// Gone, Unknown and NotTried. A chunk the backend did not do whole is
// checked: the ids still the dead letters selected (made at the time
// selected holds for them) are Failed, the others not counted done are
// Gone (another call re-drove or purged them between the selection and
// the action, or the backend did them and failed before it could say
// so). A dead letter of the id made since is not the one selected: its
// task was re-driven, ran and was dead-lettered again (by this call,
// which counted it done, or by another). When the check itself fails,
// what the backend did with the chunk is Unknown, and the action stops:
// the later chunks are NotTried. So is everything after the request
// ended.
func (a *API) runDeadAction(ctx context.Context, qname string, ids []string, selected map[string]time.Time,
	op func(ctx context.Context, queue string, ids ...string) (int, error), res *DeadResult) deadRun {
	var run deadRun
	tried := 0
	for c := range chunks(ids, actionChunk) {
		if err := ctx.Err(); err != nil {
			run.err, run.stopped = errors.Join(run.err, err), true
			break
		}
		tried += len(c)
		n, err := op(ctx, qname, c...)
		res.Done += n
		if err == nil && n == len(c) {
			continue
		}
		if err != nil && run.err == nil {
			run.err = err
		}
		why := reasons(err)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkTimeout)
		still, qerr := a.collect(cctx, qname, queue.DeadQuery{IDs: c, Limit: queue.MaxDeadLimit})
		cancel()
		if qerr != nil {
			res.Unknown += len(c) - n
			run.err, run.stopped = errors.Join(run.err, fmt.Errorf("check which are still dead letters: %w", qerr)), true
			break
		}
		failed := 0
		for _, d := range still {
			if at, ok := selected[d.id]; ok && !d.at.Equal(at) {
				continue // dead again since: not the dead letter selected
			}
			res.Failed = append(res.Failed, Failure{ID: d.id, Error: why(d.id)})
			failed++
		}
		res.Gone += max(0, len(c)-n-failed)
	}
	res.NotTried = len(ids) - tried
	return run
}

// deadRef is a dead letter as an action selects it: its task's id and
// when it was made (a dead letter of the same task made later is
// another).
type deadRef struct {
	id string
	at time.Time
}

// collect pages through q and returns the dead letters, oldest first.
func (a *API) collect(ctx context.Context, qname string, q queue.DeadQuery) ([]deadRef, error) {
	var out []deadRef
	for {
		page, err := a.backend.QueryDead(ctx, qname, q)
		if err != nil {
			return nil, err
		}
		for _, d := range page.Items {
			out = append(out, deadRef{id: d.Task.ID, at: d.At})
		}
		if page.Next == "" {
			return out, nil
		}
		q.Cursor = page.Next
	}
}

// MaxDeadActionIDs is the most ids one re-drive or purge takes (as many as
// a page of the dead-letter list holds): each chunk of ids is a scan of
// the dead-letter queue.
const MaxDeadActionIDs = queue.MaxDeadLimit
