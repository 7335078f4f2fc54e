package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/platform/admin"
)

// TestAuditEntriesSayOnWhatAndStayOneRecord: a call refused before its
// handler ran (a role too weak) is recorded with the path it was made on
// as its target (which pool a viewer tried to pause); a name a client put
// in a path reaches the audit without control, line-separator or
// bidirectional-override characters (nothing for a reader of the audit
// API or the web UI's page to take for a line of its own or to see
// reversed) and bounded, whatever its length (before, a path of a
// megabyte was kept whole in each of the ring's entries).
func TestAuditEntriesSayOnWhatAndStayOneRecord(t *testing.T) {
	t.Parallel()
	s, err := admin.NewServer(secured(t), nil, admin.StatusInfo{}, nil, nil, sampleRoutes())
	require.NoError(t, err)
	h := s.Handler()
	post := func(role admin.Role, path string) int {
		req := httptest.NewRequest(http.MethodPost, path, nil)
		req.Header.Set("Authorization", "Bearer "+roleTokens[role])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	require.Equal(t, http.StatusForbidden, post(admin.RoleViewer, "/admin/v1/pools/orders/pause"))
	forged := "x%0A2026-01-01T00:00:00Z%09alice%09operator%09pool.resume%1B%5B2J%E2%80%AE" + strings.Repeat("y", 5000)
	require.Equal(t, http.StatusOK, post(admin.RoleOperator, "/admin/v1/pools/"+forged+"/pause"))

	req := httptest.NewRequest(http.MethodGet, admin.AuditPath, nil)
	req.Header.Set("Authorization", "Bearer "+roleTokens[admin.RoleViewer])
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	var p admin.AuditPage
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
	require.Len(t, p.Entries, 2)
	denied := p.Entries[1]
	require.Equal(t, admin.AuditDenied, denied.Result)
	require.Equal(t, "/admin/v1/pools/orders/pause", denied.Target, "a refusal says on what")

	hostile := p.Entries[0]
	require.Equal(t, "pool.pause", hostile.Action)
	require.True(t, strings.HasPrefix(hostile.Target, "pool/x2026-01-01T00:00:00Zaliceoperatorpool.resume[2Jyyy"), hostile.Target)
	require.NotContains(t, hostile.Target, "\n", "no line of its own")
	require.NotContains(t, hostile.Target, "\t")
	require.NotContains(t, hostile.Target, "\x1b", "no terminal escape")
	require.NotContains(t, hostile.Target, "\u202e", "no bidirectional override")
	require.LessOrEqual(t, utf8.RuneCountInString(hostile.Target), 257, "bounded, with the cut marked")
	require.True(t, strings.HasSuffix(hostile.Target, "…"))
}

// TestAuditOfACallTheClientLeft: a client that goes away while the
// handler works, the handler returning without an answer, is recorded as
// unknown, with no status (none was sent) and the reason, not as an ok
// with 200 that nobody answered.
func TestAuditOfACallTheClientLeft(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	routes := []admin.Route{{Pattern: "POST /admin/v1/slow/{id}", Role: admin.RoleOperator, Handler: http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // gives up with the client, says nothing
	})}}
	s, err := admin.NewServer(local(), nil, admin.StatusInfo{}, nil, nil, routes)
	require.NoError(t, err)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/admin/v1/slow/7", nil)
	require.NoError(t, err)
	_, err = http.DefaultClient.Do(req)
	require.ErrorIs(t, err, context.Canceled)

	var p admin.AuditPage
	require.Eventually(t, func() bool {
		code, body, _ := request(t, http.MethodGet, srv.URL+admin.AuditPath, "", nil)
		require.Equal(t, http.StatusOK, code)
		require.NoError(t, json.Unmarshal([]byte(body), &p))
		return len(p.Entries) == 1
	}, 5*time.Second, 5*time.Millisecond)
	e := p.Entries[0]
	require.Equal(t, "POST /admin/v1/slow/{id}", e.Action)
	require.Equal(t, "/admin/v1/slow/7", e.Target)
	require.Equal(t, admin.AuditUnknown, e.Result)
	require.Zero(t, e.Status, "nothing was answered")
	require.Contains(t, e.Error, "the client went away")
}

// TestActionsRefusedByAuthenticationAreAudited: a state-changing call
// refused for an unknown bearer token is in the audit as denied, on what
// it tried, with the reason, as a failed sign-in is: the rate limit
// bounds how many (the failure that reaches the limit says so, the first
// call refused for the limit is recorded, the next ones are logged only).
// A refusal of a known identity says why. A call with no credentials at
// all, which nothing limits, is not recorded (anyone could flood the
// audit with them).
func TestActionsRefusedByAuthenticationAreAudited(t *testing.T) {
	t.Parallel()
	cfg := secured(t)
	cfg.Auth.FailedAttempts = 2
	cfg.Auth.FailedWindow = 1 << 40 // no refill during the test
	s, err := admin.NewServer(cfg, nil, admin.StatusInfo{}, nil, nil, sampleRoutes())
	require.NoError(t, err)
	h := s.Handler()
	post := func(remote, tok, pool string) int {
		req := httptest.NewRequest(http.MethodPost, "/admin/v1/pools/"+pool+"/pause", nil)
		req.RemoteAddr = remote
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	const remote = "192.0.2.7:1000"
	require.Equal(t, http.StatusUnauthorized, post(remote, "", "nocreds"))
	require.Equal(t, http.StatusUnauthorized, post(remote, "stolen-or-guessed-000001", "a"))
	require.Equal(t, http.StatusUnauthorized, post(remote, "stolen-or-guessed-000002", "b"))
	require.Equal(t, http.StatusTooManyRequests, post(remote, "stolen-or-guessed-000003", "c"))
	require.Equal(t, http.StatusTooManyRequests, post(remote, "stolen-or-guessed-000004", "d"))
	require.Equal(t, http.StatusForbidden, post("192.0.2.8:1", roleTokens[admin.RoleViewer], "e"))

	req := httptest.NewRequest(http.MethodGet, admin.AuditPath, nil)
	req.RemoteAddr = "192.0.2.99:1"
	req.Header.Set("Authorization", "Bearer "+roleTokens[admin.RoleViewer])
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	var p admin.AuditPage
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
	type row struct {
		Identity, Auth, Target, Result, Error string
		Status                                int
	}
	var got []row
	for _, e := range p.Entries {
		require.Equal(t, "POST /admin/v1/pools/{pool}/pause", e.Action)
		got = append(got, row{e.Identity, e.Auth, e.Target, e.Result, e.Error, e.Status})
	}
	require.Equal(t, []row{ // newest first
		{"ci-viewer", "token", "/admin/v1/pools/e/pause", admin.AuditDenied, "role viewer; this needs operator", http.StatusForbidden},
		{"?", "token", "/admin/v1/pools/c/pause", admin.AuditDenied, "rate-limited: too many failed sign-ins or tokens from this address", http.StatusTooManyRequests},
		{"?", "token", "/admin/v1/pools/b/pause", admin.AuditDenied, "unknown bearer token; the address is now rate-limited", http.StatusUnauthorized},
		{"?", "token", "/admin/v1/pools/a/pause", admin.AuditDenied, "unknown bearer token", http.StatusUnauthorized},
	}, got)
}

// brokenStore is an audit store that started and then cannot append.
type brokenStore struct{}

func (brokenStore) Start(context.Context) error { return nil }
func (brokenStore) Append(context.Context, admin.AuditEntry) error {
	return errors.New("nats: no responders available for request")
}
func (brokenStore) Recent(context.Context, int) ([]admin.AuditEntry, error) { return nil, nil }

// TestAuditStoreFailureIsReported: when the audit store cannot take an
// entry, the action stands (it was done: the answer says so), the entry
// is in the log and the ring, and its loss from the store is logged at
// error with its id and action, not dropped in silence.
func TestAuditStoreFailureIsReported(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.InfoLevel)
	s, err := admin.NewServer(secured(t), zap.New(core), admin.StatusInfo{}, nil, nil, sampleRoutes(), admin.WithAuditStore(brokenStore{}))
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })
	base := "http://" + s.Addr()
	code, _, _ := request(t, http.MethodPost, base+"/admin/v1/pools/orders/pause", "",
		map[string]string{"Authorization": "Bearer " + roleTokens[admin.RoleOperator]})
	require.Equal(t, http.StatusOK, code)
	p := auditPage(t, base, "")
	require.Len(t, p.Entries, 1)
	require.Equal(t, "pool.pause", p.Entries[0].Action)
	lost := logs.FilterMessageSnippet("entry not confirmed stored").FilterLevelExact(zapcore.ErrorLevel).All()
	require.Len(t, lost, 1)
	require.Equal(t, "pool.pause", lost[0].ContextMap()["action"])
	require.EqualValues(t, p.Entries[0].ID, lost[0].ContextMap()["id"])
	require.Contains(t, lost[0].ContextMap()["error"], "no responders")
}

// TestAuditParamsAreBounded: a parameter a client chose (a task's key of
// a megabyte) is kept in the entry cut to 1024 characters: the entry
// stays small enough for the ring and for the audit stream's messages
// (whose size JetStream limits: an entry over it was not stored).
func TestAuditParamsAreBounded(t *testing.T) {
	t.Parallel()
	routes := []admin.Route{{Pattern: "POST /admin/v1/things", Role: admin.RoleOperator, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		admin.Audit(r, admin.AuditEntry{Action: "thing.add", Params: map[string]any{
			"key": strings.Repeat("k", 1<<20), "keys": []string{strings.Repeat("j", 5000)}, "nested": map[string]any{"note": strings.Repeat("n", 5000)}}})
		w.WriteHeader(http.StatusCreated)
	})}}
	s, err := admin.NewServer(local(), nil, admin.StatusInfo{}, nil, nil, routes)
	require.NoError(t, err)
	s.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/admin/v1/things", nil))
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, admin.AuditPath, nil))
	require.Less(t, rec.Body.Len(), 8<<10, "the whole page")
	var p admin.AuditPage
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
	require.Len(t, p.Entries, 1)
	key := p.Entries[0].Params["key"].(string)
	require.Equal(t, strings.Repeat("k", 1024)+"…", key)
}

// TestAuditParamsInStructsAreBoundedAndRedacted: a parameter that is a
// struct (a filter a client filled, a login) is held to what a map's
// values are: its strings cleaned and bounded, its secret fields
// redacted; numbers stay exact.
func TestAuditParamsInStructsAreBoundedAndRedacted(t *testing.T) {
	t.Parallel()
	type filter struct {
		Kind     string `json:"kind"`
		Password string `json:"password"`
		N        int64  `json:"n"`
	}
	routes := []admin.Route{{Pattern: "POST /admin/v1/things", Role: admin.RoleOperator, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		admin.Audit(r, admin.AuditEntry{Action: "thing.add", Params: map[string]any{
			"filter": filter{Kind: "a\nforged: line" + strings.Repeat("k", 1<<20), Password: "s3cret", N: 1<<62 + 1},
			"ptr":    &filter{Kind: "b\u202e"}, "key\nforged": 1}})
		w.WriteHeader(http.StatusCreated)
	})}}
	s, err := admin.NewServer(local(), nil, admin.StatusInfo{}, nil, nil, routes)
	require.NoError(t, err)
	s.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/admin/v1/things", nil))
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, admin.AuditPath, nil))
	require.Less(t, rec.Body.Len(), 8<<10, "the whole page")
	require.NotContains(t, rec.Body.String(), "s3cret")
	dec := json.NewDecoder(strings.NewReader(rec.Body.String()))
	dec.UseNumber()
	var p admin.AuditPage
	require.NoError(t, dec.Decode(&p))
	require.Len(t, p.Entries, 1)
	f := p.Entries[0].Params["filter"].(map[string]any)
	require.Equal(t, "aforged: line"+strings.Repeat("k", 1024-len("aforged: line"))+"…", f["kind"])
	require.Equal(t, admin.Redacted, f["password"])
	require.Equal(t, json.Number("4611686018427387905"), f["n"])
	require.Equal(t, "b", p.Entries[0].Params["ptr"].(map[string]any)["kind"])
	require.Contains(t, p.Entries[0].Params, "keyforged")
}

// TestPublicCallsAreAuditedOnlyAsTheirHandlerSays: a public route (a
// webhook, its own signature its check) can be called by anyone; each
// call it refused was recorded under the route's pattern, so that a
// thousand posts with no signature pushed every operator's entry out of
// the ring (and, at admin.audit.max_msgs, out of the stream). Only what
// its handler records is recorded; an operator's call still is, and so
// is a public call with authentication off (the anonymous operator's).
func TestPublicCallsAreAuditedOnlyAsTheirHandlerSays(t *testing.T) {
	t.Parallel()
	routes := append(sampleRoutes(),
		admin.Route{Pattern: "POST /hooks/v1/events", Role: admin.RolePublic, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Signature") != "good" {
				http.Error(w, "bad signature", http.StatusUnauthorized)
				return
			}
			admin.Audit(r, admin.AuditEntry{Action: "event.accept", Target: "event/1", Identity: "webhook"})
			w.WriteHeader(http.StatusAccepted)
		})})
	entries := func(cfg admin.Config) []admin.AuditEntry {
		t.Helper()
		s, err := admin.NewServer(cfg, zap.NewNop(), admin.StatusInfo{}, nil, nil, routes)
		require.NoError(t, err)
		h := s.Handler()
		post := func(path string, hdr map[string]string) int {
			req := httptest.NewRequest(http.MethodPost, path, nil)
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec.Code
		}
		require.Equal(t, http.StatusOK, post("/admin/v1/pools/orders/pause", map[string]string{"Authorization": "Bearer " + roleTokens[admin.RoleOperator]}))
		for range 5 {
			require.Equal(t, http.StatusUnauthorized, post("/hooks/v1/events", nil))
		}
		require.Equal(t, http.StatusAccepted, post("/hooks/v1/events", map[string]string{"X-Signature": "good"}))
		req := httptest.NewRequest(http.MethodGet, admin.AuditPath, nil)
		req.Header.Set("Authorization", "Bearer "+roleTokens[admin.RoleViewer])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var p admin.AuditPage
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
		return p.Entries
	}
	actions := func(es []admin.AuditEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Action+" "+e.Result)
		}
		return out
	}
	require.Equal(t, []string{"event.accept ok", "pool.pause ok"}, actions(entries(secured(t))), "newest first")

	off := secured(t)
	off.Auth.Mode = admin.AuthNone
	require.Equal(t, []string{"event.accept ok", "POST /hooks/v1/events denied", "POST /hooks/v1/events denied",
		"POST /hooks/v1/events denied", "POST /hooks/v1/events denied", "POST /hooks/v1/events denied", "pool.pause ok"},
		actions(entries(off)), "with authentication off every call is the anonymous operator's")
}
