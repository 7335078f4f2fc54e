package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/control"
)

func itoa(n int) string { return strconv.Itoa(n) }

// deadOp is a re-drive or purge as the forms of the queue page post it:
// op (redrive or purge), scope (ids: the ticked ones; filter: every one
// matching kind and reason, all of them when both are empty) and the ids
// or the filter.
type deadOp struct {
	Queue  string
	Op     string
	Scope  string
	IDs    []string
	Kind   string
	Reason string
	// Until bounds a filter to the dead letters dead-lettered before it:
	// the confirmation sets it to when it counted, and its Yes posts it
	// back, so that the action takes what the confirmation stated and
	// not the dead letters that came since (RFC 3339; empty: no bound).
	Until string
}

func deadOpFrom(r *http.Request, op string) (deadOp, error) {
	f := r.PostForm
	d := deadOp{Queue: r.PathValue("queue"), Op: op, Scope: f.Get("scope"), IDs: f["ids"], Kind: f.Get("kind"), Reason: f.Get("reason"),
		Until: f.Get("until")}
	if d.Op == "" { // the confirmation: the button clicked says op:scope (or op, with scope a field)
		d.Op = f.Get("op")
		if a, sc, ok := strings.Cut(f.Get("action"), ":"); ok {
			d.Op, d.Scope = a, sc
		}
	}
	if d.Op != "redrive" && d.Op != "purge" {
		return d, &APIError{Code: http.StatusBadRequest, Msg: "op: want redrive or purge"}
	}
	switch d.Scope {
	case "ids":
		if len(d.IDs) == 0 {
			return d, &APIError{Code: http.StatusBadRequest, Msg: "no dead letter selected: tick the ones to " + d.Verb()}
		}
		d.Kind, d.Reason, d.Until = "", "", ""
	case "filter":
		d.IDs = nil
		if d.Until != "" {
			if _, err := time.Parse(time.RFC3339Nano, d.Until); err != nil {
				return d, &APIError{Code: http.StatusBadRequest, Msg: "until: want an RFC 3339 time"}
			}
		}
	default:
		return d, &APIError{Code: http.StatusBadRequest, Msg: "scope: want ids or filter"}
	}
	return d, nil
}

// Verb names the operation in a sentence.
func (d deadOp) Verb() string {
	if d.Op == "purge" {
		return "purge"
	}
	return "re-drive"
}

// action is the API's body for d.
func (d deadOp) action(dry bool) control.DeadAction {
	a := control.DeadAction{IDs: d.IDs, DryRun: dry}
	if d.Scope == "filter" {
		a.Filter = control.DeadFilter{Kind: d.Kind, Reason: d.Reason}
		a.Filter.Until, _ = time.Parse(time.RFC3339Nano, d.Until) // checked in deadOpFrom
		a.All = d.Kind == "" && d.Reason == ""
	}
	return a
}

func (d deadOp) path() string {
	return control.Prefix + "/queues/" + url.PathEscape(d.Queue) + "/dead/" + d.Op
}

type deadConfirmView struct {
	Op     deadOp
	Result control.DeadResult
	// CSRF is the session's token, in the Yes form's field for a browser
	// without scripts (htmx sends it in the header).
	CSRF string
}

// IDs are the ids the confirmation's Yes posts: the selected ones less
// those the dry run found no longer dead letters, which the confirmation
// says it leaves out.
func (v deadConfirmView) IDs() []string {
	out := map[string]bool{}
	for _, f := range v.Result.Failed {
		out[f.ID] = true
	}
	var ids []string
	for _, id := range v.Op.IDs {
		if !out[id] {
			ids = append(ids, id)
		}
	}
	return ids
}

// deadConfirm asks the API how many dead letters the operation would
// take (a dry run) and answers the confirmation, which states the count.
func (u *UI) deadConfirm(w http.ResponseWriter, r *http.Request, s *session) error {
	d, err := deadOpFrom(r, "")
	if err != nil {
		return err
	}
	if d.Scope == "filter" && d.Until == "" {
		d.Until = time.Now().UTC().Format(time.RFC3339Nano)
	}
	var res control.DeadResult
	if err := u.call(r, http.MethodPost, d.path(), d.action(true), &res); err != nil {
		return err
	}
	u.deadAnswer(w, r, s, http.StatusOK, false, deadConfirmView{Op: d, Result: res, CSRF: s.CSRF})
	return nil
}

// deadAnswer answers the confirmation (done false) or the result: the
// fragment for htmx, a page of its own for a browser without scripts.
func (u *UI) deadAnswer(w http.ResponseWriter, r *http.Request, s *session, code int, done bool, v deadConfirmView) {
	if htmx(r) {
		name := "dead-confirm"
		if done {
			name = "dead-result"
		}
		u.fragment(w, code, name, v)
		return
	}
	u.render(w, code, "deadaction", view{Title: "Re-drive or purge", Nav: "queues", S: s, Pages: u.pages,
		Data: map[string]any{"V": v, "Done": done}})
}

func (u *UI) deadRedrive(w http.ResponseWriter, r *http.Request, s *session) error {
	return u.deadDo(w, r, s, "redrive")
}

func (u *UI) deadPurge(w http.ResponseWriter, r *http.Request, s *session) error {
	return u.deadDo(w, r, s, "purge")
}

// deadDo re-drives or purges through the API and answers what it did;
// the list and the counts reload (HX-Trigger dead-changed). An action the
// API stopped midway (a backend failure it could not check) is answered
// as a result too, with the API's status and what is known: done, gone,
// failed, unknown, not tried, and why it stopped (app.js swaps an HTML
// answer whatever its status).
func (u *UI) deadDo(w http.ResponseWriter, r *http.Request, s *session, op string) error {
	d, err := deadOpFrom(r, op)
	if err != nil {
		return err
	}
	rec, err := u.do(r, http.MethodPost, d.path(), d.action(false))
	if err != nil {
		return err
	}
	res, ok := deadResultOf(rec)
	switch {
	case ok:
	case rec.code >= 200 && rec.code <= 299:
		return fmt.Errorf("ui: POST %s: the answer is no dead-letter result: %.200q", d.path(), rec.body.String())
	default:
		return answerError(rec)
	}
	if res.Error != "" {
		u.log.Warn("ui: dead-letter action stopped", zap.String("queue", d.Queue), zap.String("op", d.Op),
			zap.Int("status", rec.code), zap.String("error", res.Error))
	}
	w.Header().Set("HX-Trigger", "dead-changed")
	u.deadAnswer(w, r, s, rec.code, true, deadConfirmView{Op: d, Result: res})
	return nil
}

// deadResultOf decodes the API's answer to a re-drive or purge: a 2xx
// one, or one that stopped midway (its counts and the error).
func deadResultOf(rec *recorder) (control.DeadResult, bool) {
	var res control.DeadResult
	var has struct {
		Matched *int `json:"matched"`
	}
	body := rec.body.Bytes()
	if json.Unmarshal(body, &has) != nil || has.Matched == nil || json.Unmarshal(body, &res) != nil {
		return res, false
	}
	ok := rec.code >= 200 && rec.code <= 299
	return res, ok || res.Error != ""
}
