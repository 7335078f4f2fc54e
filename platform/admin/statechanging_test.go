package admin

import (
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/plba/plba/platform/lifecycle"
)

// A route that changes state, contributed with the viewer role (or none,
// which is the viewer's), would let every viewer change state: NewServer
// refuses it, naming the route, and takes it with the operator's role or
// as a public route with its own check.
func TestStateChangingRouteNeedsMoreThanAViewer(t *testing.T) {
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	newServer := func(r Route) error {
		cfg := DefaultConfig()
		cfg.Listen = "127.0.0.1:0"
		_, err := NewServer(cfg, zap.NewNop(), StatusInfo{}, lifecycle.NewRegistry(nil, nil), nil, []Route{r})
		return err
	}
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		for _, role := range []Role{"", RoleViewer} {
			for _, sep := range []string{" ", "\t", " \t "} {
				p := m + sep + "/admin/v1/app/thing"
				err := newServer(Route{Pattern: p, Role: role, Handler: ok})
				if err == nil || !strings.Contains(err.Error(), "/admin/v1/app/thing") || !strings.Contains(err.Error(), "changes state") {
					t.Errorf("%q with role %q: NewServer answered %v, want an error naming the route", p, role, err)
				}
			}
		}
		for _, role := range []Role{RoleOperator, RoleAdmin, RolePublic} {
			if err := newServer(Route{Pattern: m + " /admin/v1/app/thing", Role: role, Handler: ok}); err != nil {
				t.Errorf("%s with role %q: %v", m, role, err)
			}
		}
	}
	for _, p := range []string{"GET /admin/v1/app/thing", "/admin/v1/app/other", "HEAD /admin/v1/app/x"} {
		if err := newServer(Route{Pattern: p, Handler: ok}); err != nil {
			t.Errorf("%s with the viewer's role: %v", p, err)
		}
	}
}
