package control

import (
	"errors"
	"net/http"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/source"
)

func (a *API) listSources(w http.ResponseWriter, _ *http.Request) error {
	admin.WriteJSON(w, http.StatusOK, map[string]any{"sources": a.rt.Supervisor().Stats()})
	return nil
}

func (a *API) pauseSource(w http.ResponseWriter, r *http.Request) error {
	return a.controlSource(w, r, "source.pause", a.rt.Supervisor().Pause)
}

func (a *API) resumeSource(w http.ResponseWriter, r *http.Request) error {
	return a.controlSource(w, r, "source.resume", a.rt.Supervisor().Resume)
}

func (a *API) controlSource(w http.ResponseWriter, r *http.Request, action string, op func(string) error) error {
	name := r.PathValue("name")
	err := op(name)
	e := admin.AuditEntry{Action: action, Target: "source/" + name}
	if err != nil {
		e.Result, e.Error = admin.AuditFailed, err.Error()
		admin.Audit(r, e)
		if errors.Is(err, source.ErrUnknownSource) {
			return status(http.StatusNotFound, "%v", err)
		}
		return err
	}
	admin.Audit(r, e)
	for _, st := range a.rt.Supervisor().Stats() {
		if st.Name == name {
			admin.WriteJSON(w, http.StatusOK, st)
			return nil
		}
	}
	return status(http.StatusNotFound, "no source %q", name)
}
