package ui

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"sync/atomic"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/admin"
)

// Prefix is where the UI is served.
const Prefix = "/ui/"

// PagesGroup is the fx value group applications contribute pages to.
const PagesGroup = "admin.ui.pages"

// AsPage annotates a constructor returning a Page so that its result
// joins PagesGroup.
func AsPage(ctor any) any {
	return fx.Annotate(ctor, fx.ResultTags(`group:"`+PagesGroup+`"`))
}

// Page is a page an application adds to the UI, at /ui/apps/<Slug>, in
// the navigation as Title. The UI signs the user in through the admin
// API before it calls Render, and draws what Render returns: an
// application writes no HTML.
type Page struct {
	// Slug names the page in its path: lower case letters, digits and
	// dashes.
	Slug string
	// Title is the page's name in the navigation and its heading.
	Title string
	// Render returns the page's content for the request (its query
	// parameters carry the paging cursors Content's sections hand out).
	// An error wrapping queue.ErrBadCursor answers 400, any other 500.
	Render func(r *http.Request) (Content, error)
}

// Content is what an application page shows: sections, each a table.
type Content struct {
	Sections []Section
}

// Section is one table of an application page.
type Section struct {
	Title string
	// Note is a line under the title (a count, what the table leaves out).
	Note    string
	Columns []string
	// Rows are the table's cells: a time.Time is shown in the browser's
	// zone and as a relative time, anything else as fmt.Sprint prints it.
	Rows [][]any
	// Next, when set, is the query string of the section's next page
	// (e.g. "orders=20"); Prev likewise of its previous page.
	Next, Prev string
	// Empty is what the section says when it has no rows.
	Empty string
}

var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// Params are what the UI takes from the graph.
type Params struct {
	fx.In

	Pages []Page      `group:"admin.ui.pages"`
	Log   *zap.Logger `optional:"true"`
}

// UI is the admin web UI: html/template pages and small htmx fragments on
// the admin server's own routes. It reads and acts only through the
// admin API, on the same server, with the caller's own credentials (its
// session cookie and CSRF token, or its bearer token): what the API
// refuses, the UI cannot do.
type UI struct {
	pages []Page
	log   *zap.Logger
	api   atomic.Pointer[http.Handler]
	tmpl  *templates
}

// New validates the contributed pages and parses the templates.
func New(p Params) (*UI, error) {
	log := p.Log
	if log == nil {
		log = zap.NewNop()
	}
	pages := append([]Page(nil), p.Pages...)
	sort.Slice(pages, func(i, j int) bool { return pages[i].Title < pages[j].Title })
	seen := map[string]bool{}
	for _, pg := range pages {
		if !slugRE.MatchString(pg.Slug) {
			return nil, fmt.Errorf("ui: page %q: slug %q: want lower case letters, digits and dashes", pg.Title, pg.Slug)
		}
		if seen[pg.Slug] {
			return nil, fmt.Errorf("ui: two pages with slug %q", pg.Slug)
		}
		if pg.Render == nil || pg.Title == "" {
			return nil, fmt.Errorf("ui: page %q: needs a Title and a Render", pg.Slug)
		}
		seen[pg.Slug] = true
	}
	t, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	return &UI{pages: pages, log: log.Named("ui"), tmpl: t}, nil
}

// Bind gives the UI the admin server's handler, which it calls the API
// through. Until then every page answers 503.
func (u *UI) Bind(h http.Handler) { u.api.Store(&h) }

// Routes returns the UI's routes for the admin server. Pages are public
// routes at the server: each one asks the API who the caller is first
// and sends a caller without credentials to the sign-in page, so that
// every read is the API's, with the caller's credentials. Actions need
// RoleOperator (and, with a session, its CSRF token) at the server, and
// again at the API route they call.
func (u *UI) Routes() []admin.Route {
	pub, op := admin.RolePublic, admin.RoleOperator
	p := Prefix
	rs := []admin.Route{
		{Pattern: "GET " + p + "assets/{file}", Role: pub, Handler: http.HandlerFunc(serveAsset)},
		{Pattern: "GET " + p + "signin", Role: pub, Handler: u.h(u.signInPage)},
		{Pattern: "POST " + p + "signin", Role: pub, Handler: u.h(u.signIn)},
		{Pattern: "POST " + p + "signout", Role: pub, Handler: u.h(u.signOut)},
		{Pattern: "GET " + p + "{$}", Role: pub, Page: true, Handler: u.page(u.overview)},
		{Pattern: "GET " + p + "queues", Role: pub, Handler: u.page(u.queues)},
		{Pattern: "GET " + p + "queues/{queue}", Role: pub, Handler: u.page(u.queuePage)},
		{Pattern: "GET " + p + "queues/{queue}/dead/{id}", Role: pub, Handler: u.page(u.deadDetail)},
		{Pattern: "POST " + p + "queues/{queue}/dead/confirm", Role: op, Handler: u.page(u.deadConfirm)},
		{Pattern: "POST " + p + "queues/{queue}/dead/redrive", Role: op, Handler: u.page(u.deadRedrive)},
		{Pattern: "POST " + p + "queues/{queue}/dead/purge", Role: op, Handler: u.page(u.deadPurge)},
		{Pattern: "GET " + p + "pools", Role: pub, Handler: u.page(u.pools)},
		{Pattern: "POST " + p + "pools/{queue}/{op}", Role: op, Handler: u.page(u.poolAction)},
		{Pattern: "GET " + p + "sources", Role: pub, Handler: u.page(u.sources)},
		{Pattern: "POST " + p + "sources/{name}/{op}", Role: op, Handler: u.page(u.sourceAction)},
		{Pattern: "GET " + p + "audit", Role: pub, Handler: u.page(u.audit)},
		{Pattern: "POST " + p + "loglevel", Role: op, Handler: u.page(u.setLogLevel)},
		{Pattern: "GET " + p + "apps/{slug}", Role: pub, Handler: u.page(u.appPage)},
	}
	for i := range rs {
		rs[i].Summary = "the web UI (an HTML page or form, not the JSON API)"
	}
	return rs
}

// routesOut contributes the UI's routes to the admin server.
type routesOut struct {
	fx.Out
	Routes []admin.Route `group:"admin.routes,flatten"`
}

// Module provides the UI, contributes its routes to the admin server and
// binds it to the server's handler.
var Module = fx.Module("ui",
	fx.Provide(New, func(u *UI) routesOut { return routesOut{Routes: u.Routes()} }),
	fx.Invoke(func(u *UI, s *admin.Server) { u.Bind(s.Handler()) }),
)
