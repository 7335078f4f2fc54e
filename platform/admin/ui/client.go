package ui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/plba/plba/platform/admin"
)

// APIError is an answer of the admin API other than 2xx: its status and
// its message.
type APIError struct {
	Code int
	Msg  string
}

func (e *APIError) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Msg) }

// errNotBound: the UI was not bound to its admin server.
var errNotBound = errors.New("ui: not bound to the admin server")

// csrfField is the form field a form carries the session's CSRF token in
// (htmx sends it in the admin.CSRFHeader header as well).
const csrfField = admin.CSRFField

// maxAPIAnswer bounds an answer of the API the UI reads.
const maxAPIAnswer = 8 << 20

// call makes the API request method path with the credentials of r (its
// session cookie and CSRF token, or its bearer token) and its remote
// address, on the admin server's own handler, and decodes a 2xx JSON
// answer into out (nil: ignored). in, when not nil, is sent as JSON. A
// non-2xx answer is an *APIError; decoding a 503 still fills out (the
// health report).
func (u *UI) call(r *http.Request, method, path string, in, out any) error {
	rec, err := u.do(r, method, path, in)
	if err != nil {
		return err
	}
	if rec.code < 200 || rec.code > 299 {
		if rec.code == http.StatusServiceUnavailable && out != nil {
			_ = json.Unmarshal(rec.body.Bytes(), out)
		}
		return answerError(rec)
	}
	if out == nil || rec.body.Len() == 0 {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("ui: %s %s: answer: %w", method, path, err)
	}
	return nil
}

// answerError is the *APIError of an API answer: its status and the
// message of its body.
func answerError(rec *recorder) error {
	var e admin.Error
	_ = json.Unmarshal(rec.body.Bytes(), &e)
	if e.Error == "" {
		e.Error = strings.TrimSpace(rec.body.String())
	}
	return &APIError{Code: rec.code, Msg: e.Error}
}

// do makes the API request of call and returns its answer as it is. A
// state-changing request marks r as audited by the API route it calls.
func (u *UI) do(r *http.Request, method, path string, in any) (*recorder, error) {
	hp := u.api.Load()
	if hp == nil {
		return nil, errNotBound
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		// The API route records the action, refused or done: the UI's
		// own route records nothing more.
		admin.AuditedElsewhere(r)
	}
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("ui: %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, path, body)
	if err != nil {
		return nil, fmt.Errorf("ui: %s %s: %w", method, path, err)
	}
	req.RemoteAddr, req.Host, req.TLS = r.RemoteAddr, r.Host, r.TLS
	for _, h := range []string{"Cookie", "Authorization", "Origin", "Sec-Fetch-Site", "User-Agent"} {
		if v := r.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok := csrfOf(r); tok != "" {
		req.Header.Set(admin.CSRFHeader, tok)
	}
	rec := newRecorder()
	(*hp).ServeHTTP(rec, req)
	if rec.code == 0 {
		rec.code = http.StatusOK // the handler wrote nothing: net/http answers 200
	}
	return rec, nil
}

// csrfOf returns the CSRF token r carries: in the header (htmx) or in
// the form field csrfField (a plain form).
func csrfOf(r *http.Request) string {
	if v := r.Header.Get(admin.CSRFHeader); v != "" {
		return v
	}
	if r.Method == http.MethodPost && r.PostForm != nil {
		return r.PostForm.Get(csrfField)
	}
	return ""
}

// recorder is the response of an API call made in process.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	if r.body.Len()+len(p) > maxAPIAnswer {
		return 0, fmt.Errorf("ui: API answer larger than %d bytes", maxAPIAnswer)
	}
	return r.body.Write(p)
}
