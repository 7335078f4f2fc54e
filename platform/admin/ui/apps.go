package ui

import (
	"context"
	"net/http"
	"time"
)

// appTimeout bounds an application page's Render.
const appTimeout = 10 * time.Second

// appPage shows an application's page: the caller is signed in (the UI
// asked the API), then the page renders its sections.
func (u *UI) appPage(w http.ResponseWriter, r *http.Request, s *session) error {
	slug := r.PathValue("slug")
	for _, pg := range u.pages {
		if pg.Slug != slug {
			continue
		}
		ctx, cancel := context.WithTimeout(r.Context(), appTimeout)
		defer cancel()
		c, err := pg.Render(r.WithContext(ctx))
		if err != nil {
			return err
		}
		u.render(w, http.StatusOK, "app", view{Title: pg.Title, Nav: "app-" + slug, S: s, Pages: u.pages, Data: c})
		return nil
	}
	return &APIError{Code: http.StatusNotFound, Msg: "no page " + slug}
}
