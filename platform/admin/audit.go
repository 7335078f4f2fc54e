package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// AuditEntry is one state-changing call on the admin server, as recorded
// in the log (at info, whatever the log level), in the audit ring served
// at AuditPath and, when the queue backend is JetStream, in the audit
// stream.
//
// A handler fills Action, Target, Params and, when it knows better than
// the response's status code, Result and Error; Audit fills the rest
// from the request. When the entry is recorded, its text fields are
// cleaned of control, format and line-separator characters and bounded
// (Error to 1024 characters, the others to 256; "…" marks a cut): a
// name a client chose cannot forge a line or grow the audit without
// bound.
type AuditEntry struct {
	// ID orders the entries, newest highest; it is assigned when the
	// entry is recorded (nanoseconds since 1970, strictly increasing) and
	// is the cursor for paging.
	ID int64 `json:"id"`
	// Time is when Audit was called.
	Time time.Time `json:"time"`
	// Identity is the name of the token or user that made the call
	// ("anonymous" when authentication is off).
	Identity string `json:"identity"`
	// Role is the identity's role.
	Role Role `json:"role,omitempty"`
	// Auth is how the identity signed in: "token", "session" or "none".
	Auth string `json:"auth,omitempty"`
	// Action names what was done, dotted, subject first: "dlq.redrive",
	// "pool.pause", "loglevel.set", "session.create".
	Action string `json:"action"`
	// Target is what it was done to: "queue/mailorder", "pool/default",
	// "source/inbox", a dead letter's id.
	Target string `json:"target,omitempty"`
	// Params are the call's parameters. Values under a key that names a
	// secret (password, token, secret, cookie, authorization, credential,
	// api_key, private_key), at any depth, are replaced by "[redacted]";
	// strings (in maps, slices and structs too, at any depth) and keys
	// are cleaned and bounded as Error and Target are. A value other than
	// a string, a number, a bool, a map or a slice of them (a struct, a
	// pointer, a named type) is recorded as its JSON encoding decodes.
	Params map[string]any `json:"params,omitempty"`
	// Result is AuditOK, AuditPartial, AuditFailed, AuditDenied or
	// AuditUnknown. Left
	// empty, it is taken from the response's status code when the handler
	// returns (2xx and 3xx ok, 401 and 403 denied, anything else failed);
	// AuditUnknown when the handler returned without an answer after the
	// client went away (what it did is not known).
	Result string `json:"result"`
	// Error says why the call failed or was denied.
	Error string `json:"error,omitempty"`
	// Status is the HTTP status code the call was answered with (none
	// when the client went away before its handler answered).
	Status int `json:"status,omitempty"`
	// Remote is the client's address (the connection's; the admin server
	// trusts no forwarding header).
	Remote string `json:"remote,omitempty"`
}

// The results of an audited call.
const (
	AuditOK     = "ok"
	AuditFailed = "failed"
	AuditDenied = "denied"
	// AuditPartial: the call did part of what it was asked (a bulk action
	// with some targets done, some not); its Params say how much.
	AuditPartial = "partial"
	// AuditUnknown: the client went away (the request's context ended)
	// and the handler returned without answering or saying what it did.
	AuditUnknown = "unknown"
)

// Audit records e as a call made by the request r: the identity, role
// and remote address come from r, the time is now. Inside a request the
// admin server handles, the entry is recorded when the handler returns
// (so that an empty Result can be taken from the status code); a handler
// may call Audit more than once (a bulk action with one entry per
// target). A state-changing request (any method but GET, HEAD and
// OPTIONS) whose handler recorded nothing is recorded by the server
// after it, with the route's pattern as Action and the request's path
// (escaped) as Target: every state-changing call is audited, a handler
// only makes the entry more precise. A call of a public route (RolePublic)
// with authentication on is the exception: anyone may make it, and only
// what its handler records is recorded (a webhook records an event once
// its signature checked out), so that calls nobody signed cannot push the
// operators' entries out of the ring and the stream.
//
// Outside a request of the admin server (a handler called directly, with
// no auditor on its context), Audit does nothing.
func Audit(r *http.Request, e AuditEntry) {
	if e.Remote == "" {
		e.Remote = r.RemoteAddr
	}
	AuditContext(r.Context(), e)
}

// AuditContext is Audit for code that holds only the request's context.
func AuditContext(ctx context.Context, e AuditEntry) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if id, ok := IdentityFrom(ctx); ok {
		if e.Identity == "" {
			e.Identity = id.Name
		}
		if e.Role == "" {
			e.Role = id.Role
		}
		if e.Auth == "" {
			e.Auth = id.Kind
		}
	}
	e.Params = redactParams(e.Params)
	if st, ok := ctx.Value(auditStateKey{}).(*auditState); ok {
		if e.Remote == "" {
			e.Remote = st.remote
		}
		if id := st.id; id != nil && e.Identity == "" {
			e.Identity, e.Role, e.Auth = id.Name, id.Role, id.Kind
		}
		st.add(e)
		return
	}
	if rec, ok := ctx.Value(auditorKey{}).(auditor); ok {
		if e.Result == "" {
			e.Result = AuditOK
		}
		rec.record(ctx, e)
	}
}

// auditor records finished entries: the log, the ring, the stream.
type auditor interface {
	record(ctx context.Context, e AuditEntry)
}

type auditorKey struct{}

type auditStateKey struct{}

// auditState collects the entries of one request until its handler
// returns.
type auditState struct {
	remote  string
	id      *Identity // who made the request, once authenticated
	skip    bool      // not audited: no valid credentials, nothing done
	public  bool      // a public route's call: only its handler's entries (publicCall)
	mu      sync.Mutex
	entries []AuditEntry
}

func (s *auditState) add(e AuditEntry) {
	s.mu.Lock()
	s.entries = append(s.entries, e)
	s.mu.Unlock()
}

// take returns the entries recorded so far, whether the request is
// audited at all, and whether the server records an entry of its own
// when the handler recorded none (not for a public call).
func (s *auditState) take() (es []AuditEntry, audit, fallback bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	es = s.entries
	s.entries = nil
	return es, !s.skip, !s.public
}

// publicCall marks the request of ctx as a call of a public route made
// with authentication on: anyone may make it, and nothing identifies
// its caller. Only the entries its handler records (once its own check,
// a webhook's signature, passed) are recorded, no entry of the
// server's: a refused call recorded would let anyone push the
// operators' entries out of the ring and the audit stream.
func publicCall(ctx context.Context) {
	if st, ok := ctx.Value(auditStateKey{}).(*auditState); ok {
		st.mu.Lock()
		st.public = true
		st.mu.Unlock()
	}
}

// skipAudit marks the request of ctx as not audited: it was refused
// with no credentials to count against the rate limit (no credentials at
// all, an expired session, a sign-in's bad body: recording them would let
// anyone flood the audit; an unknown bearer token, which the limit
// counts, is audited), or its handler leaves the audit to the calls it
// makes (AuditedElsewhere).
func skipAudit(ctx context.Context) {
	if st, ok := ctx.Value(auditStateKey{}).(*auditState); ok {
		st.mu.Lock()
		st.skip = true
		st.mu.Unlock()
	}
}

// stateChanging reports whether a request with method m changes state.
func stateChanging(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// resultOf is the Result of a call answered with status code.
func resultOf(code int) string {
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return AuditDenied
	case code >= 200 && code < 400:
		return AuditOK
	}
	return AuditFailed
}

// Redacted replaces a secret parameter's value in an audit entry.
const Redacted = "[redacted]"

// secretWords are the parts of a parameter's name that mark it secret.
var secretWords = []string{"password", "passwd", "secret", "token", "cookie", "authorization", "credential", "api_key", "apikey", "private_key"}

func secretName(k string) bool {
	k = strings.ToLower(k)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// redactParams returns a copy of p with the secrets replaced, at any
// depth (maps and slices), and p unchanged.
func redactParams(p map[string]any) map[string]any {
	if p == nil {
		return nil
	}
	out := make(map[string]any, len(p))
	for k, v := range p {
		k = auditText(k, maxAuditField)
		if secretName(k) {
			out[k] = Redacted
			continue
		}
		out[k] = redactValue(v)
	}
	return out
}

// redactValue is v with its secrets redacted and its strings as an
// entry holds them (auditText, at most maxAuditError characters).
func redactValue(v any) any {
	switch x := v.(type) {
	case string:
		return auditText(x, maxAuditError)
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = auditText(s, maxAuditError)
		}
		return out
	case map[string]any:
		return redactParams(x)
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return redactParams(m)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = redactValue(e)
		}
		return out
	case nil, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return v
	case json.Number: // as decoded below; one that is not a number is text
		if _, err := x.Float64(); err != nil {
			return auditText(string(x), maxAuditError)
		}
		return v
	}
	// Anything else (a struct such as a filter, a pointer, a map or slice
	// of another type, a named string) is taken as its JSON says it, so
	// that its strings are cleaned and bounded and its secrets redacted
	// like a map's: a struct's field a client filled is no way around them.
	b, err := json.Marshal(v)
	if err != nil {
		return auditText(fmt.Sprintf("[not JSON: %v]", err), maxAuditError)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // an int64 stays exact
	var g any
	if err := dec.Decode(&g); err != nil {
		return auditText(fmt.Sprintf("[not JSON: %v]", err), maxAuditError)
	}
	return redactValue(g)
}

// AuditedElsewhere marks the request r as audited by the admin calls its
// handler makes on the caller's behalf (the web UI passes each action on
// to the API route that does it, and that route records it): the server
// records no entry of its own for r. A refusal of r itself (no
// credentials, a role too weak) is recorded before its handler runs.
func AuditedElsewhere(r *http.Request) { skipAudit(r.Context()) }
