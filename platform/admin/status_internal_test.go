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

// /admin/v1/status's live and ready agree with the component states it
// lists, while a component changes state.
func TestStatusIsOneSnapshot(t *testing.T) {
	t.Parallel()
	comps := lifecycle.NewRegistry(nil, nil)
	c := comps.MustRegister("pool/flapping", lifecycle.StayDegraded)
	c.Set(lifecycle.Running, nil)
	hr, err := health.NewRegistry(health.Options{}, comps, nil)
	require.NoError(t, err)
	h := statusHandler(StatusInfo{}, comps, hr)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // owned: stopped and waited for below
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				c.Set(lifecycle.Degraded, errors.New("stalled"))
			} else {
				c.Set(lifecycle.Running, nil)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	for i := range 5000 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, StatusPath, nil))
		var st Status
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
		running := st.Components[0].State == lifecycle.Running
		require.Equal(t, running, st.Ready, "status %d: ready %v, component %+v", i, st.Ready, st.Components[0])
	}
}

// /admin/v1/status claims no policy for a component that never fails
// after start (a pool, the queue backend: lifecycle.NeverFails), as the
// host refuses one for it in lifecycle.policies: it says never_fails. A
// component that can fail shows its policy.
func TestStatusClaimsNoPolicyForAComponentThatNeverFails(t *testing.T) {
	t.Parallel()
	comps := lifecycle.NewRegistry(nil, nil)
	comps.MustRegister("pool/default", lifecycle.StayDegraded, lifecycle.NeverFails()).Set(lifecycle.Running, nil)
	comps.MustRegister("queue/memory", lifecycle.StopHost, lifecycle.NeverFails()).Set(lifecycle.Running, nil)
	comps.MustRegister("source/mail", lifecycle.StayDegraded, lifecycle.External(false)).Set(lifecycle.Running, nil)
	hr, err := health.NewRegistry(health.Options{}, comps, nil)
	require.NoError(t, err)
	for _, h := range []http.Handler{statusHandler(StatusInfo{}, comps, hr), statusHandler(StatusInfo{}, comps, nil)} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, StatusPath, nil))
		require.Equal(t, http.StatusOK, rec.Code)
		var st struct {
			Components []map[string]any `json:"components"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
		require.Len(t, st.Components, 3)
		for _, c := range st.Components {
			switch c["name"] {
			case "pool/default", "queue/memory":
				require.NotContains(t, c, "policy", "%v", c)
				require.Equal(t, true, c["never_fails"], "%v", c)
			default:
				require.Equal(t, "degrade", c["policy"], "%v", c)
				require.NotContains(t, c, "never_fails", "%v", c)
			}
		}
	}
}

// Without a health registry (NewServer's hr nil), /admin/v1/status judges
// live and ready on the components it lists: it said live and ready
// whatever their states.
func TestStatusWithoutHealthJudgesItsComponents(t *testing.T) {
	t.Parallel()
	comps := lifecycle.NewRegistry(nil, nil)
	c := comps.MustRegister("mailbox", lifecycle.StayDegraded)
	h := statusHandler(StatusInfo{}, comps, nil)
	read := func() Status {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, StatusPath, nil))
		require.Equal(t, http.StatusOK, rec.Code)
		var st Status
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
		return st
	}
	st := read()
	require.True(t, st.Live)
	require.False(t, st.Ready, "mailbox is starting")
	c.Set(lifecycle.Running, nil)
	st = read()
	require.True(t, st.Live)
	require.True(t, st.Ready)
	c.Fail(errors.New("gone"))
	st = read()
	require.False(t, st.Live, "mailbox failed")
	require.False(t, st.Ready)
	require.Equal(t, lifecycle.Failed, st.Components[0].State)
}
