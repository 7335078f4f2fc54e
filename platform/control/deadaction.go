package control

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
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
	// Matched is how many dead letters the selection found (each
	// dead letter of a selected id: tasks may share an id).
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
	sel := selection{}
	var ids []string // each selected id once
	if len(body.IDs) > 0 {
		for c := range chunks(dedupe(body.IDs), actionChunk) {
			q := base
			q.IDs = c
			got, err := a.collect(ctx, qname, q)
			if err != nil {
				return err
			}
			sel.add(got)
		}
		for _, id := range dedupe(body.IDs) {
			if _, ok := sel[id]; ok {
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
		ids = sel.add(got)
		if !body.Filter.empty() {
			var err error
			if ids, err = a.leaveShared(ctx, qname, ids, sel, &res); err != nil {
				return err
			}
		}
	}
	res.Matched = sel.count(nil)
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
	run := a.runDeadAction(ctx, qname, ids, sel, op, &res)
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
// Gone, Unknown and NotTried, each a count of dead letters (sel holds
// those selected of each id: the backend does every dead letter of an
// id, and tasks may share one). A chunk the backend did not do whole is
// checked: the dead letters selected (made at the time sel holds) that
// are still there are Failed, the others not counted done are Gone
// (another call re-drove or purged them between the selection and the
// action, or the backend did them and failed before it could say so). A
// dead letter of the id made since is not one selected: its task was
// re-driven, ran and was dead-lettered again (by this call, which
// counted it done, or by another). When the check itself fails, what the
// backend did with the chunk is Unknown, and the action stops: the later
// chunks are NotTried. So is everything after the request ended. A
// backend that did more dead letters of a chunk's ids than were
// selected (one made between the selection and the action) counts them
// matched too: done, they were found by the ids selected.
func (a *API) runDeadAction(ctx context.Context, qname string, ids []string, sel selection,
	op func(ctx context.Context, queue string, ids ...string) (int, error), res *DeadResult) deadRun {
	var run deadRun
	total, tried := sel.count(ids), 0
	for c := range chunks(ids, actionChunk) {
		if err := ctx.Err(); err != nil {
			run.err, run.stopped = errors.Join(run.err, err), true
			break
		}
		want := sel.count(c)
		tried += want
		n, err := op(ctx, qname, c...)
		res.Done += n
		if n > want {
			res.Matched += n - want
		}
		if err == nil && n >= want {
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
			res.Unknown += max(0, want-n)
			run.err, run.stopped = errors.Join(run.err, fmt.Errorf("check which are still dead letters: %w", qerr)), true
			break
		}
		failed := 0
		for _, d := range still {
			if !sel.has(d) {
				continue // dead again since: not a dead letter selected
			}
			res.Failed = append(res.Failed, Failure{ID: d.id, Error: why(d.id)})
			failed++
		}
		res.Gone += max(0, want-n-failed)
	}
	res.NotTried = total - tried
	return run
}

// selection is the dead letters an action selected: for each task id,
// when each of its dead letters was made (tasks may share an id, and a
// dead letter of the same task made later is another).
type selection map[string][]time.Time

// add selects refs and returns the ids new to the selection, in order.
func (s selection) add(refs []deadRef) []string {
	var ids []string
	for _, d := range refs {
		if _, ok := s[d.id]; !ok {
			ids = append(ids, d.id)
		}
		s[d.id] = append(s[d.id], d.at)
	}
	return ids
}

// count is how many dead letters of ids (all when nil) are selected.
func (s selection) count(ids []string) int {
	n := 0
	if ids == nil {
		for _, ats := range s {
			n += len(ats)
		}
		return n
	}
	for _, id := range ids {
		n += len(s[id])
	}
	return n
}

// has reports whether d is a dead letter selected.
func (s selection) has(d deadRef) bool {
	return slices.ContainsFunc(s[d.id], d.at.Equal)
}

// leaveShared takes out of ids those that share their task id with a dead
// letter a filter did not select: the backend acts by id, on every dead
// letter of it, so it would do one nobody selected. Their selected dead
// letters are reported Failed, saying so; the others ids are returned.
func (a *API) leaveShared(ctx context.Context, qname string, ids []string, sel selection, res *DeadResult) ([]string, error) {
	all := selection{}
	for c := range chunks(ids, actionChunk) {
		got, err := a.collect(ctx, qname, queue.DeadQuery{IDs: c, Limit: queue.MaxDeadLimit})
		if err != nil {
			return nil, err
		}
		all.add(got)
	}
	kept := ids[:0:0]
	for _, id := range ids {
		if extra := len(all[id]) - len(sel[id]); extra > 0 {
			for range sel[id] {
				res.Failed = append(res.Failed, Failure{ID: id, Error: fmt.Sprintf(
					"shares its id with %d dead letters the filter does not select, which an action on it would take too (select them by id)", extra)})
			}
			continue
		}
		kept = append(kept, id)
	}
	return kept, nil
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
