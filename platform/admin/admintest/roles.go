// Package admintest helps test admin routes: CheckRoles walks every
// route of a server with each role and without credentials.
package admintest

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/plba/plba/platform/admin"
)

// wildcard matches a ServeMux pattern's wildcards ({id}, {rest...}).
var wildcard = regexp.MustCompile(`\{[^}]*\}`)

// Request returns the method and a path that matches pattern: the
// pattern's method (GET when it has none) and its path with every
// wildcard replaced by "x".
func Request(pattern string) (method, path string) {
	method, path = http.MethodGet, pattern
	if m, p, ok := strings.Cut(pattern, " "); ok {
		method, path = m, strings.TrimSpace(p)
	}
	if i := strings.IndexByte(path, '/'); i > 0 { // a host in the pattern
		path = path[i:]
	}
	path = wildcard.ReplaceAllString(path, "x")
	path = strings.TrimSuffix(path, "{$}")
	return method, path
}

// CheckRoles calls every route in routes on the server at base (a URL
// such as "http://127.0.0.1:8080") without credentials and then with the
// bearer token of each role in tokens, and checks what the server
// answers: without credentials 401 with a WWW-Authenticate challenge
// (unless the route is public); with a role below the route's 403;
// otherwise neither 401 nor 403 (what the handler makes of an empty body
// is its own business). Routes are called for real: use a server whose
// state the test owns.
func CheckRoles(t testing.TB, base string, routes []admin.Route, tokens map[admin.Role]string) {
	t.Helper()
	if len(routes) == 0 {
		t.Fatal("admintest: no routes to check")
	}
	for _, r := range routes {
		need := r.Role
		if need == "" {
			need = admin.RoleViewer
		}
		method, path := Request(r.Pattern)
		code, hdr := call(t, method, base+path, "")
		switch {
		case need == admin.RolePublic:
			if code == http.StatusUnauthorized || code == http.StatusForbidden {
				t.Errorf("%s (public) without credentials: %d, want neither 401 nor 403", r.Pattern, code)
			}
		case code != http.StatusUnauthorized:
			t.Errorf("%s (%s) without credentials: %d, want 401", r.Pattern, need, code)
		case hdr.Get("WWW-Authenticate") == "":
			t.Errorf("%s (%s) without credentials: 401 without a WWW-Authenticate challenge", r.Pattern, need)
		}
		for role, tok := range tokens {
			code, _ := call(t, method, base+path, tok)
			switch {
			case role.Allows(need) && (code == http.StatusUnauthorized || code == http.StatusForbidden):
				t.Errorf("%s (%s) as %s: %d, want neither 401 nor 403", r.Pattern, need, role, code)
			case !role.Allows(need) && code != http.StatusForbidden:
				t.Errorf("%s (%s) as %s: %d, want 403", r.Pattern, need, role, code)
			}
		}
	}
}

func call(t testing.TB, method, url, token string) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatalf("admintest: %s %s: %v", method, url, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("admintest: %s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}
