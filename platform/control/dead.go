package control

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/queue"
)

// MaxPayloadShown caps the payload of one dead letter in the API.
const MaxPayloadShown = 64 << 10

// DeadSummary is a dead letter in a list: no payload, its size.
type DeadSummary struct {
	ID          string            `json:"id"`
	Kind        string            `json:"kind"`
	Key         string            `json:"key"`
	Reason      string            `json:"reason"`
	At          time.Time         `json:"at"`
	Attempts    int               `json:"attempts"`
	EnqueuedAt  time.Time         `json:"enqueued_at"`
	PayloadSize int               `json:"payload_size"`
	Headers     map[string]string `json:"headers,omitempty"`
}

// DeadDetail is one dead letter with its payload (at most
// MaxPayloadShown bytes: text when it is UTF-8, base64 otherwise).
type DeadDetail struct {
	DeadSummary
	Queue            string `json:"queue"`
	Payload          string `json:"payload"`
	PayloadEncoding  string `json:"payload_encoding"` // "text" or "base64"
	PayloadTruncated bool   `json:"payload_truncated"`
}

// DeadList is a page of dead letters.
type DeadList struct {
	Items []DeadSummary `json:"items"`
	// Next is the cursor of the next page (the cursor parameter); empty
	// on the last page.
	Next string `json:"next,omitempty"`
}

func summary(d queue.DeadLetter) DeadSummary {
	t := d.Task
	return DeadSummary{ID: t.ID, Kind: t.Kind, Key: t.Key, Reason: d.Reason, At: d.At, Attempts: t.Attempt,
		EnqueuedAt: t.EnqueuedAt, PayloadSize: d.PayloadSize, Headers: t.Headers}
}

// filterOf reads the filters kind, reason, since and until (RFC 3339).
func filterOf(r *http.Request) (queue.DeadQuery, error) {
	v := r.URL.Query()
	q := queue.DeadQuery{Kind: v.Get("kind"), Reason: v.Get("reason"), Cursor: v.Get("cursor")}
	var err error
	if q.Since, err = timeParam(v.Get("since"), "since"); err != nil {
		return q, err
	}
	if q.Until, err = timeParam(v.Get("until"), "until"); err != nil {
		return q, err
	}
	if err := checkRange(q.Since, q.Until); err != nil {
		return q, err
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > queue.MaxDeadLimit {
			return q, status(http.StatusBadRequest, "limit %q: want 1 to %d", s, queue.MaxDeadLimit)
		}
		q.Limit = n
	}
	return q, nil
}

func timeParam(s, name string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, status(http.StatusBadRequest, "%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", name, s)
	}
	return t, nil
}

// checkRange refuses since at or after until (both set): a range that
// holds nothing, most likely the two swapped; answering it with nothing
// matched would pass an action that did nothing off as done.
func checkRange(since, until time.Time) error {
	if since.IsZero() || until.IsZero() || since.Before(until) {
		return nil
	}
	return status(http.StatusBadRequest, "since %s is not before until %s: the range holds nothing (swapped?)",
		since.Format(time.RFC3339Nano), until.Format(time.RFC3339Nano))
}

func (a *API) listDead(w http.ResponseWriter, r *http.Request) error {
	q, err := filterOf(r)
	if err != nil {
		return err
	}
	page, err := a.backend.QueryDead(r.Context(), r.PathValue("queue"), q)
	if err != nil {
		return err
	}
	if len(page.Items) == 0 && q.Cursor == "" {
		if err := a.knownQueue(r, r.PathValue("queue")); err != nil {
			return err
		}
	}
	out := DeadList{Items: make([]DeadSummary, 0, len(page.Items)), Next: page.Next}
	for _, d := range page.Items {
		out.Items = append(out.Items, summary(d))
	}
	admin.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getDead(w http.ResponseWriter, r *http.Request) error {
	d, err := a.backend.GetDead(r.Context(), r.PathValue("queue"), r.PathValue("id"))
	if err != nil {
		return err
	}
	admin.WriteJSON(w, http.StatusOK, detail(d))
	return nil
}

func detail(d queue.DeadLetter) DeadDetail {
	out := DeadDetail{DeadSummary: summary(d), Queue: d.Task.Queue}
	p := d.Task.Payload
	out.PayloadSize = len(p)
	if len(p) > MaxPayloadShown {
		p, out.PayloadTruncated = p[:MaxPayloadShown], true
	}
	if utf8.Valid(p) || (out.PayloadTruncated && utf8.Valid(trimPartialRune(p))) {
		out.Payload, out.PayloadEncoding = string(p), "text"
	} else {
		out.Payload, out.PayloadEncoding = base64.StdEncoding.EncodeToString(p), "base64"
	}
	return out
}

// trimPartialRune drops an incomplete UTF-8 sequence a cut left at the end.
func trimPartialRune(p []byte) []byte {
	for i := 0; i < utf8.UTFMax && len(p) > 0; i++ {
		if utf8.Valid(p) {
			return p
		}
		p = p[:len(p)-1]
	}
	return p
}

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
	if len(body.IDs) > 0 {
		found := map[string]bool{}
		for c := range chunks(dedupe(body.IDs), actionChunk) {
			q := base
			q.IDs = c
			got, err := a.collect(ctx, qname, q)
			if err != nil {
				return err
			}
			for _, id := range got {
				found[id] = true
			}
		}
		for _, id := range dedupe(body.IDs) {
			if found[id] {
				ids = append(ids, id)
			} else {
				res.Failed = append(res.Failed, Failure{ID: id, Error: "not a dead letter of queue " + qname})
			}
		}
	} else {
		var err error
		if ids, err = a.collect(ctx, qname, base); err != nil {
			return err
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
	run := a.runDeadAction(ctx, qname, ids, op, &res)
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
// checked: the ids still dead letters are Failed, the others not
// counted done are Gone (another call re-drove or purged them between
// the selection and the action, or the backend did them and failed
// before it could say so). When the check itself fails, what the
// backend did with the chunk is Unknown, and the action stops: the
// later chunks are NotTried. So is everything after the request ended.
func (a *API) runDeadAction(ctx context.Context, qname string, ids []string,
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
		for _, id := range still {
			res.Failed = append(res.Failed, Failure{ID: id, Error: why(id)})
		}
		res.Gone += max(0, len(c)-n-len(still))
	}
	res.NotTried = len(ids) - tried
	return run
}

// collect pages through q and returns the ids, oldest first.
func (a *API) collect(ctx context.Context, qname string, q queue.DeadQuery) ([]string, error) {
	var ids []string
	for {
		page, err := a.backend.QueryDead(ctx, qname, q)
		if err != nil {
			return nil, err
		}
		for _, d := range page.Items {
			ids = append(ids, d.Task.ID)
		}
		if page.Next == "" {
			return ids, nil
		}
		q.Cursor = page.Next
	}
}

// MaxDeadActionIDs is the most ids one re-drive or purge takes (as many as
// a page of the dead-letter list holds): each chunk of ids is a scan of
// the dead-letter queue.
const MaxDeadActionIDs = queue.MaxDeadLimit
