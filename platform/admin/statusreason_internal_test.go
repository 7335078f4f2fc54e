package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
)

// TestStatusSaysWhyNotReady: /admin/v1/status answers ready (or live)
// false with the reason /healthz gives, judged on the same snapshot, with
// a health registry or without one; a ready host has no reason. It
// answered a bare ready: false: only /healthz said why.
func TestStatusSaysWhyNotReady(t *testing.T) {
	t.Parallel()
	get := func(h http.Handler) Status {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, StatusPath, nil))
		require.Equal(t, http.StatusOK, rec.Code)
		var st Status
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
		return st
	}
	comps := lifecycle.NewRegistry(nil, nil)
	pool := comps.MustRegister("pool/orders", lifecycle.StayDegraded)
	pool.Set(lifecycle.Running, nil)
	hr, err := health.NewRegistry(health.Options{}, comps, nil)
	require.NoError(t, err)
	for _, h := range []http.Handler{statusHandler(StatusInfo{}, comps, hr), statusHandler(StatusInfo{}, comps, nil)} {
		st := get(h)
		require.True(t, st.Ready)
		require.Empty(t, st.Reason)
	}

	hr.SetStarting(true)
	st := get(statusHandler(StatusInfo{}, comps, hr))
	require.False(t, st.Ready)
	require.Equal(t, "starting", st.Reason)
	hr.SetStarting(false)

	pool.Set(lifecycle.Degraded, errors.New("stalled"))
	for _, h := range []http.Handler{statusHandler(StatusInfo{}, comps, hr), statusHandler(StatusInfo{}, comps, nil)} {
		st := get(h)
		require.False(t, st.Ready)
		require.True(t, st.Live)
		require.Equal(t, "component pool/orders is degraded", st.Reason)
		require.Equal(t, hr.Report().Reason, st.Reason, "as /healthz says it")
	}

	src := comps.MustRegister("source/mail", lifecycle.StopHost)
	src.Set(lifecycle.Failed, errors.New("login refused"))
	for _, h := range []http.Handler{statusHandler(StatusInfo{}, comps, hr), statusHandler(StatusInfo{}, comps, nil)} {
		st := get(h)
		require.False(t, st.Live)
		require.Equal(t, "component source/mail failed: login refused", st.Reason)
	}
}
