package ui

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/plba/plba/platform/control"
)

// isStatus reports whether err is an API answer with code.
func isStatus(err error, code int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// queueList is the answer of GET /admin/v1/queues.
type queueList struct {
	Queues []control.Queue `json:"queues"`
}

// queues shows every queue's counts and rates; htmx reloads the table
// (the fragment "queues-table") every few seconds.
func (u *UI) queues(w http.ResponseWriter, r *http.Request, s *session) error {
	var ql queueList
	if err := u.call(r, http.MethodGet, control.Prefix+"/queues", nil, &ql); err != nil {
		return err
	}
	u.listPage(w, r, s, "queues", "Queues", ql.Queues)
	return nil
}

// deadFilter is the dead-letter list's filter and page, from the query.
type deadFilter struct {
	Kind, Reason, Cursor string
}

func filterFrom(v url.Values) deadFilter {
	return deadFilter{Kind: v.Get("kind"), Reason: v.Get("reason"), Cursor: v.Get("cursor")}
}

// deadPageSize is how many dead letters one page of the list shows.
const deadPageSize = 25

type queueView struct {
	Queue  control.Queue
	Filter deadFilter
	Dead   control.DeadList
	// Start says whether this is the first page (no cursor).
	Start bool
}

// queuePage shows a queue's counts and its dead letters, paged and
// filtered by kind and reason (GET /admin/v1/queues/{queue} and its
// dead letters' list, without payloads). With htmx it answers the
// counts ("queue-counts") or the list ("dead-list") alone.
func (u *UI) queuePage(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("queue")
	v := queueView{Filter: filterFrom(r.URL.Query())}
	v.Start = v.Filter.Cursor == ""
	base := control.Prefix + "/queues/" + url.PathEscape(name)
	if err := u.call(r, http.MethodGet, base, nil, &v.Queue); err != nil {
		return err
	}
	part := r.URL.Query().Get("part")
	if htmx(r) && part == "counts" {
		u.fragment(w, http.StatusOK, "queue-counts", v.Queue)
		return nil
	}
	q := url.Values{"limit": {itoa(deadPageSize)}}
	for k, val := range map[string]string{"kind": v.Filter.Kind, "reason": v.Filter.Reason, "cursor": v.Filter.Cursor} {
		if val != "" {
			q.Set(k, val)
		}
	}
	if err := u.call(r, http.MethodGet, base+"/dead?"+q.Encode(), nil, &v.Dead); err != nil {
		return err
	}
	data := map[string]any{"V": v, "S": s}
	if htmx(r) && part == "dead" {
		u.fragment(w, http.StatusOK, "dead-list", data)
		return nil
	}
	u.render(w, http.StatusOK, "queue", view{Title: "Queue " + name, Nav: "queues", S: s, Pages: u.pages, Data: data})
	return nil
}

// deadDetail shows one dead letter: reason, attempts, headers and the
// payload, indented when it is JSON.
func (u *UI) deadDetail(w http.ResponseWriter, r *http.Request, s *session) error {
	var d control.DeadDetail
	path := control.Prefix + "/queues/" + url.PathEscape(r.PathValue("queue")) + "/dead/" + url.PathEscape(r.PathValue("id"))
	if err := u.call(r, http.MethodGet, path, nil, &d); err != nil {
		return err
	}
	if d.Queue == "" {
		d.Queue = r.PathValue("queue")
	}
	u.render(w, http.StatusOK, "dead", view{Title: "Dead letter " + d.ID, Nav: "queues", S: s, Pages: u.pages, Data: d})
	return nil
}
