package ui_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/ui"
)

// TestRateLimitedSignInSaysHowLongToWait: a sign-in the API refuses
// for too many failures says how long to wait as the API does
// (Retry-After), not a fixed minute (the wait follows
// admin.auth.failed_window: 12 minutes with an hour's window of 5).
func TestRateLimitedSignInSaysHowLongToWait(t *testing.T) {
	t.Parallel()
	api := http.NewServeMux()
	api.HandleFunc("GET "+admin.SessionPath, func(w http.ResponseWriter, _ *http.Request) {
		admin.WriteJSON(w, http.StatusUnauthorized, admin.Error{Error: "credentials required"})
	})
	api.HandleFunc("POST "+admin.SessionPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "720")
		admin.WriteJSON(w, http.StatusTooManyRequests, admin.Error{Error: "admin: too many failed sign-ins or tokens from this address; retry in 720s"})
	})
	u, err := ui.New(ui.Params{})
	require.NoError(t, err)
	u.Bind(api)
	mux := http.NewServeMux()
	for _, r := range u.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/signin", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	m := hiddenToken.FindStringSubmatch(rec.Body.String())
	require.NotNil(t, m)
	req := httptest.NewRequest(http.MethodPost, "/ui/signin", strings.NewReader(url.Values{"token": {m[1]}, "name": {"olive"}, "password": {"x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	require.Equal(t, http.StatusTooManyRequests, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), "12 minutes", "the API's Retry-After")
	require.NotContains(t, rec.Body.String(), "a minute")
}
