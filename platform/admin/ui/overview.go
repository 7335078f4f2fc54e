package ui

import (
	"net/http"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/health"
)

type overviewView struct {
	Status admin.Status
	Health health.Report
	Chart  chart
	Every  string
}

// overview shows the host: version, uptime, configuration digest, live
// and ready (with the status's reason when not, from the same snapshot),
// the components, the health checks and the throughput of the last 15
// minutes, from GET /admin/v1/status, /healthz and /admin/v1/throughput.
func (u *UI) overview(w http.ResponseWriter, r *http.Request, s *session) error {
	var v overviewView
	if err := u.call(r, http.MethodGet, admin.StatusPath, nil, &v.Status); err != nil {
		return err
	}
	if err := u.call(r, http.MethodGet, "/healthz", nil, &v.Health); err != nil && !isStatus(err, http.StatusServiceUnavailable) {
		if !isStatus(err, http.StatusNotFound) { // a server without a health registry
			return err
		}
	}
	var tp control.Throughput
	if err := u.call(r, http.MethodGet, control.Prefix+"/throughput", nil, &tp); err != nil && !isStatus(err, http.StatusNotFound) {
		return err
	}
	v.Chart, v.Every = newChart(tp), tp.Every
	u.render(w, http.StatusOK, "overview", view{Title: "Overview", Nav: "overview", S: s, Pages: u.pages, Data: v})
	return nil
}
