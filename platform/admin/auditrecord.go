package admin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// recorder is the server's auditor: it assigns each entry its id, writes
// it to the log at info (logger "admin.audit") whatever the log level,
// keeps it in the ring and, with a store, appends it there.
type recorder struct {
	log   *zap.Logger // the recorder's own lines (the store's failures)
	trail *zap.Logger // the entries: written at every level (alwaysCore)
	ring  *ring
	store AuditStore // nil: the ring only

	mu   sync.Mutex // gives ids and adds to the ring in one step
	last int64      // the last id given
}

func newRecorder(log *zap.Logger, c AuditConfig) *recorder {
	c = c.WithDefaults()
	log = log.Named("audit")
	trail := log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return alwaysCore{c} }))
	return &recorder{log: log, trail: trail, ring: newRing(c.RingSize)}
}

// alwaysCore writes every entry to its core whatever the core's level:
// the audit is a record of what was done, not a diagnostic, and a host
// run at log.level warn (or an operator raising the level through
// LogLevelPath) would otherwise write no entry to the log.
type alwaysCore struct{ zapcore.Core }

func (c alwaysCore) Enabled(zapcore.Level) bool { return true }

func (c alwaysCore) With(fields []zapcore.Field) zapcore.Core { return alwaysCore{c.Core.With(fields)} }

func (c alwaysCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(e, c)
}

// storeTimeout bounds appending one entry to the store.
const storeTimeout = 5 * time.Second

// start starts the store and fills the ring with its newest entries.
func (r *recorder) start(ctx context.Context) error {
	if r.store == nil {
		return nil
	}
	if err := r.store.Start(ctx); err != nil {
		return fmt.Errorf("admin: audit store: %w", err)
	}
	es, err := r.store.Recent(ctx, r.ring.size)
	if err != nil {
		return fmt.Errorf("admin: audit store: read the newest entries: %w", err)
	}
	r.mu.Lock()
	for _, e := range es {
		r.last = max(r.last, e.ID)
	}
	r.mu.Unlock()
	r.ring.fill(es)
	r.log.Info("audit: ring filled from the store", zap.Int("entries", len(es)))
	return nil
}

// nextID returns an id above every one given before, close to t.
// r.mu held.
func (r *recorder) nextID(t time.Time) int64 {
	id := t.UnixNano()
	if id <= r.last {
		id = r.last + 1
	}
	r.last = id
	return id
}

// The bounds, in characters, of an entry's text fields (auditText).
const (
	maxAuditField = 256  // Identity, Action, Target, Auth, Remote
	maxAuditError = 1024 // Error
)

// auditText is s as an audit entry holds it: control, format
// (bidirectional overrides), private-use and line-separator characters
// and invalid UTF-8 removed, so that no field shows a reader of the
// audit (the API's JSON, the web UI, a tool reading the stream) a line of
// its own, reversed text or a terminal's escape; cut to max characters
// ("…" marks the cut).
func auditText(s string, max int) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Zl, unicode.Zp) {
			clean = false
			break
		}
	}
	if clean && len(s) <= max { // characters <= bytes
		return s
	}
	var b strings.Builder
	n := 0
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		if r == utf8.RuneError && size == 1 { // a byte that is not UTF-8
			continue
		}
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Zl, unicode.Zp) {
			continue
		}
		if n == max {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// clean bounds and cleans e's text fields (auditText): whatever a
// client put in a path, a name or a body, an entry stays one record of
// bounded size.
func (e *AuditEntry) clean() {
	for _, f := range []*string{&e.Identity, &e.Action, &e.Target, &e.Auth, &e.Remote, &e.Result} {
		*f = auditText(*f, maxAuditField)
	}
	e.Error = auditText(e.Error, maxAuditError)
}

func (r *recorder) record(ctx context.Context, e AuditEntry) {
	e.clean()
	// The id and the ring's place under one lock: the ring is kept in
	// the order of the ids, which its pages (newest first) and their
	// cursors (an id) rely on. Given apart, an entry given a lower id but
	// slower to reach the ring would be served as the newer one, and its
	// cursor would skip the entry after it.
	r.mu.Lock()
	e.ID = r.nextID(e.Time)
	r.ring.add(e)
	r.mu.Unlock()
	fields := []zap.Field{
		zap.String("action", e.Action), zap.String("result", e.Result),
		zap.String("identity", e.Identity), zap.String("role", string(e.Role)),
		zap.String("remote", e.Remote),
	}
	if e.Auth != "" {
		fields = append(fields, zap.String("auth", e.Auth))
	}
	if e.Target != "" {
		fields = append(fields, zap.String("target", e.Target))
	}
	if len(e.Params) > 0 {
		fields = append(fields, zap.Any("params", e.Params))
	}
	if e.Status != 0 {
		fields = append(fields, zap.Int("status", e.Status))
	}
	if e.Error != "" {
		fields = append(fields, zap.String("error", e.Error))
	}
	r.trail.Info("audit", fields...)
	if r.store != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer cancel()
		if err := r.store.Append(ctx, e); err != nil {
			r.log.Error("audit: entry not confirmed stored: not stored, or its answer lost (it is in the log and the ring)", zap.Int64("id", e.ID),
				zap.String("action", e.Action), zap.Error(err))
		}
	}
}

// audited wraps a route's handler: the auditor is on every request's
// context; a state-changing request's entries are recorded when the
// handler returns (one with the route's pattern as its action and the
// request's path as its target when it recorded none, but for a public
// call: publicCall), with the result of
// the status code it answered, or AuditUnknown when it answered nothing
// after the client went away.
func audited(rec auditor, pattern string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), auditorKey{}, rec)
		if !stateChanging(r.Method) {
			h.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		st := &auditState{remote: r.RemoteAddr}
		ctx = context.WithValue(ctx, auditStateKey{}, st)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			code := sw.code
			gone := false // the client went away and the handler answered nothing
			switch {
			case p != nil:
				code = http.StatusInternalServerError
			case code == 0 && r.Context().Err() != nil:
				gone = true
			case code == 0:
				code = http.StatusOK // the handler wrote nothing: net/http answers 200
			}
			entries, audit, fallback := st.take()
			if !audit {
				entries = nil
			} else if len(entries) == 0 && fallback {
				AuditContext(ctx, AuditEntry{Action: pattern, Target: r.URL.EscapedPath(), Remote: r.RemoteAddr})
				entries, _, _ = st.take()
			}
			for _, e := range entries {
				switch {
				case gone && e.Result == "":
					e.Result = AuditUnknown
					if e.Error == "" {
						e.Error = "the client went away before the call was answered: " + context.Cause(r.Context()).Error()
					}
				case gone: // the handler said what it did: no status was sent
				default:
					if e.Status == 0 {
						e.Status = code
					}
					if e.Result == "" {
						e.Result = resultOf(code)
					}
				}
				rec.record(ctx, e)
			}
			if p != nil {
				panic(p)
			}
		}()
		h.ServeHTTP(sw, r.WithContext(ctx))
	})
}

// statusWriter remembers the status code a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
