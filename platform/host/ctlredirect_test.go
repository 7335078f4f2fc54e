package host

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCtlDoesNotFollowARedirect: a server (a proxy sending http to
// https, a moved host) that answers a call with a redirect did not do
// it. Followed, a PUT or POST comes back as a GET (301, 302, 303) and
// its 200 read as done: `ctl loglevel debug` printed the level it did not
// set and exited 0. Ctl follows none: it fails naming the status and the
// place, and sends the token nowhere else.
func TestCtlDoesNotFollowARedirect(t *testing.T) {
	var elsewhere, elsewhereAuth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved/admin/v1/loglevel" {
			elsewhere = append(elsewhere, r.Method)
			elsewhereAuth = append(elsewhereAuth, r.Header.Get("Authorization"))
			_, _ = w.Write([]byte(`{"level":"info"}`))
			return
		}
		http.Redirect(w, r, "/moved"+r.URL.Path, http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	t.Setenv(CtlTokenEnv, "operator-token")
	var out, errb bytes.Buffer
	code := execute([]string{"ctl", "--url", srv.URL, "loglevel", "debug"}, &out, &errb)
	require.Equal(t, ExitFailure, code, "stdout %q stderr %q", out.String(), errb.String())
	require.Contains(t, errb.String(), "302")
	require.Contains(t, errb.String(), "/moved/admin/v1/loglevel", "where the server points")
	require.Empty(t, out.String())
	require.Empty(t, elsewhere, "nothing was sent to the place the redirect names")
	require.Empty(t, elsewhereAuth)
}
