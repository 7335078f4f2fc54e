package ui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/source"
)

type poolList struct {
	Pools []control.Pool `json:"pools"`
}

type sourceList struct {
	Sources []source.Stats `json:"sources"`
}

// pools shows every pool (state, size, busy workers) with pause, resume
// and resize for an operator; htmx reloads the table.
func (u *UI) pools(w http.ResponseWriter, r *http.Request, s *session) error {
	var pl poolList
	if err := u.call(r, http.MethodGet, control.Prefix+"/pools", nil, &pl); err != nil {
		return err
	}
	data := map[string]any{"Pools": pl.Pools, "S": s}
	u.listPage(w, r, s, "pools", "Pools", data)
	return nil
}

// poolAction pauses, resumes or resizes a pool through the API and
// answers the pools' table.
func (u *UI) poolAction(w http.ResponseWriter, r *http.Request, s *session) error {
	q, op := r.PathValue("queue"), r.PathValue("op")
	path := control.Prefix + "/pools/" + url.PathEscape(q) + "/" + op
	var body any
	switch op {
	case "pause", "resume":
	case "resize":
		n, err := strconv.Atoi(strings.TrimSpace(r.PostForm.Get("size")))
		if err != nil {
			return &APIError{Code: http.StatusBadRequest, Msg: "size: want a whole number of workers"}
		}
		body = control.Resize{Size: n}
	default:
		return &APIError{Code: http.StatusNotFound, Msg: "no pool action " + op + " (pause, resume, resize)"}
	}
	if err := u.call(r, http.MethodPost, path, body, nil); err != nil {
		return err
	}
	return u.pools(w, r, s)
}

// sources shows every source (state, last poll and emit, errors) with
// pause and resume for an operator; htmx reloads the table.
func (u *UI) sources(w http.ResponseWriter, r *http.Request, s *session) error {
	var sl sourceList
	if err := u.call(r, http.MethodGet, control.Prefix+"/sources", nil, &sl); err != nil {
		return err
	}
	data := map[string]any{"Sources": sl.Sources, "S": s}
	u.listPage(w, r, s, "sources", "Sources", data)
	return nil
}

// sourceAction pauses or resumes a source through the API and answers
// the sources' table.
func (u *UI) sourceAction(w http.ResponseWriter, r *http.Request, s *session) error {
	name, op := r.PathValue("name"), r.PathValue("op")
	if op != "pause" && op != "resume" {
		return &APIError{Code: http.StatusNotFound, Msg: "no source action " + op + " (pause, resume)"}
	}
	if err := u.call(r, http.MethodPost, control.Prefix+"/sources/"+url.PathEscape(name)+"/"+op, nil, nil); err != nil {
		return err
	}
	return u.sources(w, r, s)
}
