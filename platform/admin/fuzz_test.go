package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/plba/plba/platform/admin"
)

// FuzzRequestBodies sends whatever body and content type to the routes
// that decode one (sign-in, log level): the answer is never a 5xx nor a
// panic, and an error is one JSON object whose message shows no Go
// internals (a file path, a goroutine dump).
func FuzzRequestBodies(f *testing.F) {
	for _, seed := range []string{`{"name":"alice","password":"alicealice"}`, `{"level":"debug"}`, `name=a&password=b`,
		`{"name":"a","password":"b"} {}`, "\x00\xff", `{"name":` + strings.Repeat("[", 10000), `%zz`, ``} {
		f.Add(seed, "application/json")
		f.Add(seed, "application/x-www-form-urlencoded")
	}
	pw, err := bcrypt.GenerateFromPassword([]byte("alicealice"), bcrypt.MinCost)
	if err != nil {
		f.Fatal(err)
	}
	h, err := admin.NewServer(admin.Config{Listen: "127.0.0.1:0", Auth: admin.AuthConfig{
		Users:          []admin.UserConfig{{Name: "alice", Role: admin.RoleOperator, PasswordHash: string(pw)}},
		Tokens:         []admin.TokenConfig{{Name: "op", Role: admin.RoleOperator, Token: "operator-token-0123456789"}},
		FailedAttempts: 1 << 30,
	}}, nil, admin.StatusInfo{}, nil, nil, admin.LogLevelRoutes(zap.NewAtomicLevel(), nil))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body, ctype string) {
		for _, c := range []struct{ method, path string }{{http.MethodPost, admin.SessionPath}, {http.MethodPut, admin.LogLevelPath}} {
			req := httptest.NewRequest(c.method, c.path, strings.NewReader(body))
			req.Header.Set("Content-Type", ctype)
			req.Header.Set("Authorization", "Bearer operator-token-0123456789")
			if c.path == admin.SessionPath {
				req.Header.Del("Authorization")
			}
			rec := httptest.NewRecorder()
			h.Handler().ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s %s %q (%s): %d %s", c.method, c.path, body, ctype, rec.Code, rec.Body)
			}
			if rec.Code >= 400 {
				var e admin.Error
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
					t.Fatalf("%s %s: %d answer not an error object: %s", c.method, c.path, rec.Code, rec.Body)
				}
				for _, leak := range []string{".go:", "goroutine ", "/home/", "/usr/"} {
					if strings.Contains(e.Error, leak) {
						t.Fatalf("%s %s: answer leaks %q: %s", c.method, c.path, leak, e.Error)
					}
				}
			}
		}
	})
}
