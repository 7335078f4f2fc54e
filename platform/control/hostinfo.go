package control

import (
	"net/http"
	"net/http/pprof"
	"os"
	"strings"

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
		{Pattern: "GET " + PprofPrefix + "cmdline", Role: admin.RoleAdmin, Handler: cmdline(func() []string { return os.Args })},
		{Pattern: "GET " + PprofPrefix + "profile", Role: admin.RoleAdmin, Handler: http.HandlerFunc(pprof.Profile)},
		{Pattern: "GET " + PprofPrefix + "symbol", Role: admin.RoleAdmin, Handler: http.HandlerFunc(pprof.Symbol)},
		{Pattern: "GET " + PprofPrefix + "trace", Role: admin.RoleAdmin, Handler: http.HandlerFunc(pprof.Trace)},
		{Pattern: "GET " + PprofPrefix + "{profile}", Role: admin.RoleAdmin, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			pprof.Handler(r.PathValue("profile")).ServeHTTP(w, r)
		})},
	}
}

// cmdline serves the command line as pprof's Cmdline does (the
// arguments, NUL-separated), with the value of every --set replaced by
// admin.Redacted: a --set may carry a secret (a token, a password, a URL
// with credentials), which GET /admin/v1/config shows redacted, and the
// effective configuration there shows every other value set so.
func cmdline(args func() []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(strings.Join(redactSets(args()), "\x00")))
	})
}

// redactSets returns args with the value of each --set key=value (and
// --set=key=value) replaced by admin.Redacted, the key kept; args after
// "--" are not flags and stay as they are.
func redactSets(args []string) []string {
	out := append([]string(nil), args...)
	redact := func(kv string) string {
		if k, _, ok := strings.Cut(kv, "="); ok {
			return k + "=" + admin.Redacted
		}
		return admin.Redacted
	}
	for i := 1; i < len(out); i++ {
		switch a := out[i]; {
		case a == "--":
			return out
		case a == "--set" && i+1 < len(out):
			i++
			out[i] = redact(out[i])
		case strings.HasPrefix(a, "--set="):
			out[i] = "--set=" + redact(strings.TrimPrefix(a, "--set="))
		}
	}
	return out
}
