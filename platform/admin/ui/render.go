package ui

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/worker"
)

//go:embed templates/*.html
var templateFS embed.FS

// CSP is the Content-Security-Policy of every UI response: scripts,
// styles and requests only from the admin server itself, no inline
// script or style, no framing.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// secure sets the security headers of a UI response.
func secure(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // not no-referrer: a form post would say Origin: null
	h.Set("Cache-Control", "no-store")
}

// templates are the parsed pages, each the layout plus its own file,
// and the fragments (partials.html) htmx swaps in.
type templates struct {
	pages map[string]*template.Template
	frags *template.Template
}

var funcs = template.FuncMap{
	"rate": func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"cell": cell,
	"when": when,
	"latency": func(d time.Duration) string {
		return d.Round(10 * time.Microsecond).String()
	},
	"pretty": pretty,
	"q": func(kv ...string) template.URL {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] != "" {
				v.Set(kv[i], kv[i+1])
			}
		}
		return template.URL(v.Encode()) // encoded: safe in a query
	},
	"qurl": func(query string) template.URL {
		v, err := url.ParseQuery(query)
		if err != nil {
			return "?"
		}
		return template.URL("?" + v.Encode()) // re-encoded: safe
	},
	"path": url.PathEscape,
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			if k, ok := kv[i].(string); ok {
				m[k] = kv[i+1]
			}
		}
		return m
	},
	"upper":  strings.ToUpper,
	"params": params,
	// maxWorkers bounds the resize field as the API bounds a size.
	"maxWorkers": func() int { return worker.MaxConcurrency },
}

// params renders an audit entry's parameters as compact JSON, keys
// sorted, as the API recorded them.
func params(p map[string]any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the template escapes
	if err := enc.Encode(p); err != nil {
		return fmt.Sprint(p)
	}
	return strings.TrimSpace(buf.String())
}

func parseTemplates() (*templates, error) {
	base, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html")
	if err != nil {
		return nil, fmt.Errorf("ui: templates: %w", err)
	}
	t := &templates{pages: map[string]*template.Template{}, frags: base}
	files, err := fs.Glob(templateFS, "templates/page_*.html")
	if err != nil {
		return nil, fmt.Errorf("ui: templates: %w", err)
	}
	for _, f := range files {
		c, err := base.Clone()
		if err != nil {
			return nil, fmt.Errorf("ui: templates: %w", err)
		}
		if _, err := c.ParseFS(templateFS, f); err != nil {
			return nil, fmt.Errorf("ui: templates: %w", err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(f, "templates/page_"), ".html")
		t.pages[name] = c
	}
	return t, nil
}

// session is who the caller is, as the API told.
type session struct {
	admin.Identity
	// CSRF is the session's token (empty for a bearer token and with
	// authentication off).
	CSRF string
}

// CanAct reports whether the caller may act (operator and above): the
// UI shows action buttons only then (the server refuses them anyway).
func (s *session) CanAct() bool { return s.Role.Allows(admin.RoleOperator) }

// SignedIn reports whether the caller signed in with a session (and so
// can sign out).
func (s *session) SignedIn() bool { return s.Kind == "session" }

// Headers is the hx-headers attribute of the body: the CSRF token on
// every htmx request.
func (s *session) Headers() string {
	if s.CSRF == "" {
		return "{}"
	}
	b, _ := json.Marshal(map[string]string{admin.CSRFHeader: s.CSRF})
	return string(b)
}

// view is what every page template gets.
type view struct {
	Title string
	Nav   string // the navigation entry to mark current
	S     *session
	Pages []Page // the applications' pages, for the navigation
	Data  any
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, s *session) error

// page wraps a page or action: security headers, the form (actions),
// who the caller is (GET SessionPath on the API with the caller's
// credentials; without any, a page sends the browser to the sign-in), and
// an error page or message for what f returns. An action is audited by
// the API route it calls (do); one the UI refuses before it calls any is
// audited by fail.
func (u *UI) page(f handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secure(w)
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, admin.MaxFormBody)
			if err := r.ParseForm(); err != nil {
				u.fail(w, r, nil, &APIError{Code: http.StatusBadRequest, Msg: "form: " + err.Error()})
				return
			}
		}
		var info admin.SessionInfo
		if err := u.call(r, http.MethodGet, admin.SessionPath, nil, &info); err != nil {
			var ae *APIError
			if errors.As(err, &ae) && ae.Code == http.StatusUnauthorized {
				redirect(w, r, Prefix+"signin")
				return
			}
			u.fail(w, r, nil, err)
			return
		}
		s := &session{Identity: info.Identity, CSRF: info.CSRFToken}
		if err := f(w, r, s); err != nil {
			u.fail(w, r, s, err)
		}
	})
}

// h wraps a handler that needs no caller (the sign-in).
func (u *UI) h(f func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secure(w)
		if err := f(w, r); err != nil {
			u.fail(w, r, nil, err)
		}
	})
}

// htmx reports whether r came from htmx (a fragment is wanted).
func htmx(r *http.Request) bool { return r.Header.Get("HX-Request") == "true" }

// redirect sends the browser to path: with HX-Redirect for htmx, with a
// 303 otherwise.
func redirect(w http.ResponseWriter, r *http.Request, path string) {
	if htmx(r) {
		w.Header().Set("HX-Redirect", path)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// fail answers err: the API's status and message (or 500), as a page, or
// as text for htmx (app.js shows it).
func (u *UI) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	code, msg := http.StatusInternalServerError, err.Error()
	var ae *APIError
	if errors.As(err, &ae) {
		code, msg = ae.Code, ae.Msg
	} else if errors.Is(err, errNotBound) {
		code = http.StatusServiceUnavailable
	}
	if code >= 500 {
		u.log.Warn("ui: request failed", zap.String("path", r.URL.Path), zap.Int("status", code), zap.Error(err))
	}
	if r.Method == http.MethodPost {
		// An action refused before it called the API: audited here (when
		// it called the API, the API route's entry stands and this one is
		// dropped, see do).
		admin.Audit(r, admin.AuditEntry{Action: r.Pattern, Target: r.URL.EscapedPath(), Error: msg})
	}
	if htmx(r) || s == nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, "%s: %s\n", http.StatusText(code), msg)
		return
	}
	u.render(w, code, "error", view{Title: http.StatusText(code), S: s, Pages: u.pages,
		Data: map[string]any{"Code": code, "Msg": msg}})
}

// render writes the page name with v.
func (u *UI) render(w http.ResponseWriter, code int, name string, v view) {
	t, ok := u.tmpl.pages[name]
	if !ok {
		http.Error(w, "ui: no page "+name, http.StatusInternalServerError)
		return
	}
	u.write(w, code, t, "layout", v)
}

// fragment writes the fragment name (of partials.html) with data.
func (u *UI) fragment(w http.ResponseWriter, code int, name string, data any) {
	u.write(w, code, u.tmpl.frags, name, data)
}

func (u *UI) write(w http.ResponseWriter, code int, t *template.Template, name string, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		u.log.Error("ui: template", zap.String("template", name), zap.Error(err))
		http.Error(w, "ui: template "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set(ownHeader, "1")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// ownHeader marks an HTML answer as the UI's own: app.js swaps one whose
// status says an error (an action that failed midway says what it did),
// and not a page a proxy answered with instead (502, 504), whose action
// may have been done.
const ownHeader = "X-Plba-Ui"

// cell renders one cell of an application page.
func cell(v any) template.HTML {
	if t, ok := v.(time.Time); ok {
		return when(t)
	}
	if v == nil {
		return ""
	}
	return template.HTML(template.HTMLEscapeString(fmt.Sprint(v)))
}

// when renders t as a <time> element app.js shows in the browser's zone (named)
// and as a relative time; "–" for the zero time.
func when(t time.Time) template.HTML {
	if t.IsZero() {
		return "–"
	}
	u := t.UTC()
	return template.HTML(`<time datetime="` + u.Format(time.RFC3339Nano) + `">` + u.Format("2006-01-02 15:04:05") + ` UTC</time>`)
}

// pretty indents s when it is JSON, and returns it as it is otherwise.
func pretty(s string) string {
	var buf bytes.Buffer
	if json.Valid([]byte(s)) && json.Indent(&buf, []byte(s), "", "  ") == nil {
		return buf.String()
	}
	return s
}

// listPage answers a page that is one live table: for htmx's refresh, the
// table alone (template name+"-table"); otherwise the whole page (template
// name, in the navigation as name).
func (u *UI) listPage(w http.ResponseWriter, r *http.Request, s *session, name, title string, data any) {
	if htmx(r) {
		u.fragment(w, http.StatusOK, name+"-table", data)
		return
	}
	u.render(w, http.StatusOK, name, view{Title: title, Nav: name, S: s, Pages: u.pages, Data: data})
}
