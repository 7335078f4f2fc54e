package auditstream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/plba/plba/internal/natstest"
	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/auditstream"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

func TestMain(m *testing.M) {
	if url := os.Getenv("PLBA_TEST_NATS_URL"); url != "" {
		natstest.KeepStreamDir(url)
	}
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"))
}

// backend starts a JetStream backend: embedded on dir, or the external
// server of PLBA_TEST_NATS_URL when external is true (skipped without it).
func backend(t *testing.T, dir string, external bool) *jetstream.Backend {
	t.Helper()
	cfg := jetstream.Config{Embedded: embedded.Config{StoreDir: dir}}
	if external {
		u := os.Getenv("PLBA_TEST_NATS_URL")
		if u == "" {
			t.Skip("PLBA_TEST_NATS_URL not set (e.g. nats://127.0.0.1:4222)")
		}
		cfg = jetstream.Config{URLs: []string{u}, StreamPrefix: fmt.Sprintf("T%d", time.Now().UnixNano())}
		natstest.DeleteStreamsAtCleanup(t, u, cfg.StreamPrefix)
	}
	b, err := jetstream.Open(context.Background(), jetstream.Params{Config: cfg})
	require.NoError(t, err)
	return b
}

// server is an admin server with an operator token and the audit store
// on b, started (its ring filled from the stream).
func server(t *testing.T, b *jetstream.Backend, stream string) (*admin.Server, *httptest.Server) {
	t.Helper()
	cfg := admin.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Auth.Tokens = []admin.TokenConfig{{Name: "ops", Role: admin.RoleOperator, Token: "operator-token-0123456789"}}
	h, err := bcrypt.GenerateFromPassword([]byte("alicealice"), bcrypt.MinCost)
	require.NoError(t, err)
	cfg.Auth.Users = []admin.UserConfig{{Name: "alice", Role: admin.RoleOperator, PasswordHash: string(h)}}
	cfg.Audit.Stream = stream
	cfg.Audit.RingSize = 3
	st := auditstream.New(b.JetStream, cfg.Audit, 1, nil)
	act := admin.Route{Pattern: "POST /admin/v1/pools/{pool}/pause", Role: admin.RoleOperator, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		admin.Audit(r, admin.AuditEntry{Action: "pool.pause", Target: "pool/" + r.PathValue("pool"), Params: map[string]any{"token": "s3cret"}})
		w.WriteHeader(http.StatusNoContent)
	})}
	s, err := admin.NewServer(cfg, nil, admin.StatusInfo{}, nil, nil, []admin.Route{act}, admin.WithAuditStore(st))
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })
	return s, httptest.NewServer(s.Handler())
}

func pause(t *testing.T, base, pool string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/admin/v1/pools/"+pool+"/pause", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer operator-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
}

func targets(t *testing.T, s *httptest.Server) []string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+admin.AuditPath, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer operator-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var p admin.AuditPage
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
	var out []string
	for _, e := range p.Entries {
		out = append(out, e.Target)
	}
	return out
}

// TestAuditSurvivesARestart: entries recorded by one admin server are in
// the stream (secrets redacted; a failed sign-in with the name it tried,
// cleaned, its address and reason, and not its password) and fill the
// ring of the next one, on a restarted embedded server over the same
// store directory; new entries come after them.
func TestAuditSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	b := backend(t, dir, false)
	_, h := server(t, b, "PLBA_AUDIT")
	resp, err := http.Post(h.URL+admin.SessionPath, "application/json", strings.NewReader(`{"name":"mallory\r\n","password":"guessed-pw"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	for _, p := range []string{"a", "b", "c", "d"} {
		pause(t, h.URL, p)
	}
	require.Equal(t, []string{"pool/d", "pool/c", "pool/b"}, targets(t, h))
	h.Close()

	st := auditstream.New(b.JetStream, admin.AuditConfig{Stream: "PLBA_AUDIT"}, 1, nil)
	es, err := st.Recent(context.Background(), 10)
	require.NoError(t, err)
	require.Len(t, es, 5)
	signIn := es[0]
	require.Equal(t, []string{"session.create", "mallory", admin.AuditDenied, "unknown user"},
		[]string{signIn.Action, signIn.Identity, signIn.Result, signIn.Error})
	require.True(t, strings.HasPrefix(signIn.Remote, "127.0.0.1:"), signIn.Remote)
	raw, err := json.Marshal(signIn)
	require.NoError(t, err)
	require.NotContains(t, string(raw), "guessed-pw")
	require.Equal(t, "pool/a", es[1].Target)
	require.Equal(t, admin.Redacted, es[1].Params["token"])
	require.Equal(t, "ops", es[1].Identity)
	require.Equal(t, admin.AuditOK, es[1].Result)
	require.NoError(t, b.Close(context.Background()))

	b2 := backend(t, dir, false)
	t.Cleanup(func() { require.NoError(t, b2.Close(context.Background())) })
	_, h2 := server(t, b2, "PLBA_AUDIT")
	defer h2.Close()
	require.Equal(t, []string{"pool/d", "pool/c", "pool/b"}, targets(t, h2), "the ring is filled from the stream")
	pause(t, h2.URL, "e")
	require.Equal(t, []string{"pool/e", "pool/d", "pool/c"}, targets(t, h2))
}

// TestAuditStreamExternal runs the store on the NATS server of
// PLBA_TEST_NATS_URL: the stream's limits and Recent's paging over more
// entries than one fetch.
func TestAuditStreamExternal(t *testing.T) {
	b := backend(t, "", true)
	t.Cleanup(func() { require.NoError(t, b.Close(context.Background())) })
	name := fmt.Sprintf("PLBA_AUDIT_T%d", time.Now().UnixNano())
	ctx := context.Background()
	t.Cleanup(func() { _ = b.JetStream().DeleteStream(ctx, name) })
	st := auditstream.New(b.JetStream, admin.AuditConfig{Stream: name, MaxMsgs: 500, MaxAge: time.Hour}, 1, nil)
	require.NoError(t, st.Start(ctx))
	info, err := b.JetStream().Stream(ctx, name)
	require.NoError(t, err)
	require.Equal(t, int64(500), info.CachedInfo().Config.MaxMsgs)
	require.Equal(t, time.Hour, info.CachedInfo().Config.MaxAge)
	for i := range 600 {
		require.NoError(t, st.Append(ctx, admin.AuditEntry{ID: int64(i + 1), Action: "x", Result: admin.AuditOK}))
	}
	es, err := st.Recent(ctx, 400)
	require.NoError(t, err)
	require.Len(t, es, 400)
	require.Equal(t, int64(201), es[0].ID)
	require.Equal(t, int64(600), es[399].ID)
	es, err = st.Recent(ctx, 1000)
	require.NoError(t, err)
	require.Len(t, es, 500, "max_msgs keeps the newest 500")
	require.Equal(t, int64(101), es[0].ID)
}

// TestTwoHostsOnOneStreamKeepEveryEntry: the hosts of a cluster share the
// audit stream, and an entry's id is a time in nanoseconds: two hosts can
// give their entries the same one. Both entries are kept (the stream's
// de-duplication is for one host's retried append), not one of them
// dropped while both appends report success.
func TestTwoHostsOnOneStreamKeepEveryEntry(t *testing.T) {
	b := backend(t, t.TempDir(), false)
	t.Cleanup(func() { require.NoError(t, b.Close(context.Background())) })
	ctx := context.Background()
	cfg := admin.AuditConfig{Stream: "PLBA_AUDIT"}
	one, two := auditstream.New(b.JetStream, cfg, 1, nil), auditstream.New(b.JetStream, cfg, 1, nil)
	require.NoError(t, one.Start(ctx))
	require.NoError(t, two.Start(ctx))
	const id = 1796428657512561448
	require.NoError(t, one.Append(ctx, admin.AuditEntry{ID: id, Action: "pool.pause", Target: "pool/a", Result: admin.AuditOK}))
	require.NoError(t, two.Append(ctx, admin.AuditEntry{ID: id, Action: "dlq.purge", Target: "queue/b", Result: admin.AuditOK}))
	es, err := one.Recent(ctx, 10)
	require.NoError(t, err)
	var got []string
	for _, e := range es {
		got = append(got, e.Action)
	}
	require.Equal(t, []string{"pool.pause", "dlq.purge"}, got)
}

// TestUndecodableEntriesAreCounted: entries of the stream that do not
// decode are skipped by Recent, and one warning counts them, so that an
// operator knows the history in the ring has holes.
func TestUndecodableEntriesAreCounted(t *testing.T) {
	b := backend(t, t.TempDir(), false)
	t.Cleanup(func() { require.NoError(t, b.Close(context.Background())) })
	ctx := t.Context()
	core, logs := observer.New(zapcore.InfoLevel)
	cfg := admin.AuditConfig{Stream: "HOLES"}
	st := auditstream.New(b.JetStream, cfg, 1, zap.New(core))
	require.NoError(t, st.Start(ctx))
	require.NoError(t, st.Append(ctx, admin.AuditEntry{ID: 1, Action: "pool.pause", Result: admin.AuditOK}))
	for _, bad := range []string{"not json", `{"id":"a string"}`} {
		_, err := b.JetStream().Publish(ctx, "HOLES.entries", []byte(bad))
		require.NoError(t, err)
	}
	require.NoError(t, st.Append(ctx, admin.AuditEntry{ID: 2, Action: "pool.resume", Result: admin.AuditOK}))

	es, err := st.Recent(ctx, 10)
	require.NoError(t, err)
	require.Len(t, es, 2)
	warned := logs.FilterLevelExact(zapcore.WarnLevel).All()
	require.Len(t, warned, 1, "one warning for the entries skipped")
	require.Equal(t, int64(2), warned[0].ContextMap()["skipped"])
	require.Equal(t, "HOLES", warned[0].ContextMap()["stream"])

	logs.TakeAll()
	_ = st.Append(ctx, admin.AuditEntry{ID: 3, Action: "pool.pause", Result: admin.AuditOK})
	es, err = st.Recent(ctx, 1)
	require.NoError(t, err)
	require.Len(t, es, 1)
	require.Empty(t, logs.FilterLevelExact(zapcore.WarnLevel).All(), "no warning when what was read decodes")
}
