package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/plba/plba/platform/admin"
)

// gateCore holds the log line of the audit entry whose action is held
// until gate closes, and says when that line arrived (entered).
type gateCore struct {
	zapcore.Core
	held    string
	entered chan struct{}
	gate    chan struct{}
}

func (c gateCore) With(f []zapcore.Field) zapcore.Core {
	return gateCore{Core: c.Core.With(f), held: c.held, entered: c.entered, gate: c.gate}
}

func (c gateCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c gateCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	for _, f := range fs {
		if f.Key == "action" && f.String == c.held {
			close(c.entered)
			<-c.gate
		}
	}
	return c.Core.Write(e, fs)
}

// TestAuditRingKeepsItsOrderUnderConcurrentCalls: two calls recorded at
// once, the one given the lower id slower to reach the ring (its log
// line written slowly), are still served newest first, and paging
// walks both. Before, the ring kept them in the order they reached it:
// the page answered the older entry first and its cursor (the older
// entry's id) skipped the newer one, which no page showed.
func TestAuditRingKeepsItsOrderUnderConcurrentCalls(t *testing.T) {
	t.Parallel()
	core := gateCore{Core: zapcore.NewNopCore(), held: "first", entered: make(chan struct{}), gate: make(chan struct{})}
	routes := []admin.Route{{Pattern: "POST /admin/v1/things/{name}", Role: admin.RoleOperator,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			admin.Audit(r, admin.AuditEntry{Action: r.PathValue("name")})
			w.WriteHeader(http.StatusNoContent)
		})}}
	s, err := admin.NewServer(local(), zap.New(core), admin.StatusInfo{}, nil, nil, routes)
	require.NoError(t, err)
	h := s.Handler()
	post := func(name string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/admin/v1/things/"+name, nil))
		require.Equal(t, http.StatusNoContent, rec.Code)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		post("first")
	}()
	select {
	case <-core.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the first call's entry was never logged")
	}
	post("second") // given a higher id while the first is held
	close(core.gate)
	<-done

	page := func(q string) admin.AuditPage {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, admin.AuditPath+q, nil))
		require.Equal(t, http.StatusOK, rec.Code)
		var p admin.AuditPage
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
		return p
	}
	all := page("")
	require.Len(t, all.Entries, 2)
	require.Equal(t, []string{"second", "first"}, []string{all.Entries[0].Action, all.Entries[1].Action}, "newest first")
	require.Greater(t, all.Entries[0].ID, all.Entries[1].ID)

	var walked []string
	for q := "?limit=1"; ; {
		p := page(q)
		for _, e := range p.Entries {
			walked = append(walked, e.Action)
		}
		if p.NextCursor == "" {
			break
		}
		q = "?limit=1&cursor=" + p.NextCursor
	}
	require.Equal(t, []string{"second", "first"}, walked, "paging walks every entry once")
}
