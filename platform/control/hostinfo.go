package control

import (
	"net/http"
	"net/http/pprof"

	"github.com/plba/plba/platform/admin"
)

// EffectiveConfig answers GET /admin/v1/config: the effective
// configuration as YAML with secrets redacted (as `host config show`).
type EffectiveConfig struct {
	Digest string   `json:"digest"`
	Files  []string `json:"files"`
	YAML   string   `json:"yaml"`
}

func (a *API) getConfig(w http.ResponseWriter, _ *http.Request) error {
	if a.cfg == nil {
		return status(http.StatusNotFound, "no configuration in this host")
	}
	admin.WriteJSON(w, http.StatusOK, EffectiveConfig{Digest: a.cfg.Digest(), Files: a.cfg.Files(), YAML: string(a.cfg.YAML())})
	return nil
}

// PprofPrefix is where Go's pprof is served (admin role).
const PprofPrefix = Prefix + "/debug/pprof/"

// pprofRoutes serves net/http/pprof under PprofPrefix for the admin role.
// A CPU profile or trace runs for its seconds parameter: keep it under
// admin.write_timeout.
func pprofRoutes() []admin.Route {
	return []admin.Route{
		{Pattern: "GET " + PprofPrefix + "{$}", Role: admin.RoleAdmin, Handler: http.HandlerFunc(pprof.Index)},
		{Pattern: "GET " + PprofPrefix + "cmdline", Role: admin.RoleAdmin, Handler: http.HandlerFunc(pprof.Cmdline)},
		{Pattern: "GET " + PprofPrefix + "profile", Role: admin.RoleAdmin, Handler: http.HandlerFunc(pprof.Profile)},
		{Pattern: "GET " + PprofPrefix + "symbol", Role: admin.RoleAdmin, Handler: http.HandlerFunc(pprof.Symbol)},
		{Pattern: "GET " + PprofPrefix + "trace", Role: admin.RoleAdmin, Handler: http.HandlerFunc(pprof.Trace)},
		{Pattern: "GET " + PprofPrefix + "{profile}", Role: admin.RoleAdmin, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			pprof.Handler(r.PathValue("profile")).ServeHTTP(w, r)
		})},
	}
}
