package health

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/plba/plba/platform/lifecycle"
)

// Report is the JSON body of /healthz.
type Report struct {
	Live       bool               `json:"live"`
	Ready      bool               `json:"ready"`
	Reason     string             `json:"reason,omitempty"`
	Checks     []Result           `json:"checks"`
	Components []lifecycle.Status `json:"components"`
	Time       time.Time          `json:"time"`
}

// Report assembles the full health report. Its liveness and readiness
// are judged on the check results and component states it lists (one
// snapshot): a check that runs or a component that changes state
// meanwhile cannot make them disagree.
func (r *Registry) Report() Report {
	var comps []lifecycle.Status
	if r.components != nil {
		comps = r.components.Snapshot()
	}
	live, why := liveness(lifecycle.LiveFailureIn(comps))
	ready, rwhy := r.held()
	if ready {
		ready, rwhy = readiness(lifecycle.ReadyRunningIn(comps))
	}
	r.mu.RLock()
	checks := r.resultsLocked()
	if ready {
		ready, rwhy = r.checksReadyLocked()
	}
	r.mu.RUnlock()
	rep := Report{Live: live, Ready: ready, Checks: checks, Components: comps, Time: time.Now()}
	if !live {
		rep.Reason = why
	} else if !ready {
		rep.Reason = rwhy
	}
	return rep
}

// Mount registers /livez, /readyz and /healthz on mux.
func (r *Registry) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := r.Live()
		probe(w, ok, why)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := r.Ready()
		probe(w, ok, why)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		rep := r.Report()
		code := http.StatusOK
		if !rep.Live || !rep.Ready {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store") // live state, as the probes
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false) // "<a@b>" in an error stays readable
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	})
}

func probe(w http.ResponseWriter, ok bool, why string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(why + "\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}
