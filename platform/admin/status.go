package admin

import (
	"net/http"
	"time"

	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
)

// StatusPath is where the host's status is served (GET).
const StatusPath = "/admin/v1/status"

// StatusInfo is the fixed part of /admin/v1/status.
type StatusInfo struct {
	Version      string
	Commit       string
	ConfigDigest string
	Started      time.Time
}

// Status is the JSON body of GET /admin/v1/status.
type Status struct {
	Version      string    `json:"version"`
	Commit       string    `json:"commit"`
	GoVersion    string    `json:"go_version,omitempty"`
	Started      time.Time `json:"started"`
	Uptime       string    `json:"uptime"`
	ConfigDigest string    `json:"config_digest"`
	Live         bool      `json:"live"`
	Ready        bool      `json:"ready"`
	// Reason says why the host is not live, else why it is not ready
	// (the first failed component, the first gating check that failed,
	// "starting", "shutting down"), as /healthz says it; empty when it
	// is both.
	Reason     string             `json:"reason,omitempty"`
	Components []lifecycle.Status `json:"components"`
}

func statusHandler(info StatusInfo, comps *lifecycle.Registry, hr *health.Registry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		st := Status{
			Version: info.Version, Commit: info.Commit, Started: info.Started,
			Uptime: time.Since(info.Started).Round(time.Millisecond).String(), ConfigDigest: info.ConfigDigest,
			Live: true, Ready: true,
		}
		if hr != nil { // live, ready and the components from one snapshot
			rep := hr.Report()
			st.Live, st.Ready, st.Reason, st.Components = rep.Live, rep.Ready, rep.Reason, rep.Components
		}
		if st.Components == nil && comps != nil { // a health registry without them, or none
			st.Components = comps.Snapshot()
			if hr == nil { // no checks, no start or stop held: judged on the components alone
				f, failed := lifecycle.LiveFailureIn(st.Components)
				why, ready := lifecycle.ReadyRunningIn(st.Components)
				st.Live, st.Ready = !failed, ready
				switch { // worded as the health registry words them
				case failed:
					st.Reason = "component " + f.Name + " failed: " + f.LastError
				case !ready:
					st.Reason = "component " + why
				}
			}
		}
		WriteJSON(w, http.StatusOK, st)
	})
}
