package ui

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/plba/plba/platform/queue"
)

// appTimeout bounds an application page's Render.
const appTimeout = 10 * time.Second

// appPage shows an application's page: the caller is signed in (the UI
// asked the API), then the page renders its sections. An error of Render
// that wraps queue.ErrBadCursor (a paging cursor from the query) is a 400.
func (u *UI) appPage(w http.ResponseWriter, r *http.Request, s *session) error {
	slug := r.PathValue("slug")
	for _, pg := range u.pages {
		if pg.Slug != slug {
			continue
		}
		ctx, cancel := context.WithTimeout(r.Context(), appTimeout)
		defer cancel()
		c, err := pg.Render(r.WithContext(ctx))
		if errors.Is(err, queue.ErrBadCursor) { // a paging cursor in the query the backend did not make
			return &APIError{Code: http.StatusBadRequest, Msg: err.Error()}
		}
		if err != nil {
			return err
		}
		u.render(w, http.StatusOK, "app", view{Title: pg.Title, Nav: "app-" + slug, S: s, Pages: u.pages, Data: c})
		return nil
	}
	return &APIError{Code: http.StatusNotFound, Msg: "no page " + slug}
}
