package ui

import (
	"net/http"
	"net/url"

	"github.com/plba/plba/platform/admin"
)

type auditView struct {
	Level  string
	Levels []string
	Audit  admin.AuditPage
	Cursor string
}

// auditPageSize is how many audit entries one page shows.
const auditPageSize = 50

// audit shows the log level (GET admin.LogLevelPath; an operator may
// change it) and the audit, newest first, paged (GET admin.AuditPath).
func (u *UI) audit(w http.ResponseWriter, r *http.Request, s *session) error {
	v := auditView{Levels: []string{"debug", "info", "warn", "error"}, Cursor: r.URL.Query().Get("cursor")}
	var lv admin.LogLevel
	if err := u.call(r, http.MethodGet, admin.LogLevelPath, nil, &lv); err != nil && !isStatus(err, http.StatusNotFound) && !isStatus(err, http.StatusMethodNotAllowed) {
		return err
	}
	v.Level = lv.Level
	q := url.Values{"limit": {itoa(auditPageSize)}}
	if v.Cursor != "" {
		q.Set("cursor", v.Cursor)
	}
	if err := u.call(r, http.MethodGet, admin.AuditPath+"?"+q.Encode(), nil, &v.Audit); err != nil {
		return err
	}
	u.render(w, http.StatusOK, "audit", view{Title: "Log level and audit", Nav: "audit", S: s, Pages: u.pages, Data: v})
	return nil
}

// setLogLevel changes the log level through the API (PUT
// admin.LogLevelPath) and answers the level form (htmx), or sends a
// browser without scripts back to the page.
func (u *UI) setLogLevel(w http.ResponseWriter, r *http.Request, s *session) error {
	var lv admin.LogLevel
	if err := u.call(r, http.MethodPut, admin.LogLevelPath, admin.LogLevel{Level: r.PostForm.Get("level")}, &lv); err != nil {
		return err
	}
	if !htmx(r) { // a form posted without scripts: the whole page
		redirect(w, r, Prefix+"audit")
		return nil
	}
	u.fragment(w, http.StatusOK, "loglevel", map[string]any{"Level": lv.Level, "Levels": []string{"debug", "info", "warn", "error"}, "S": s, "Saved": true})
	return nil
}
