// Package ui is the admin web UI, served by the admin server at /ui/:
// server-rendered html/template pages with a small vendored htmx for the
// live parts (queue counts, pools, sources), every asset embedded with
// go:embed, nothing loaded from elsewhere.
//
// The UI is a client of the admin API on the same server. Each page
// first asks the API who the caller is (GET /admin/v1/session, with the
// caller's session cookie or bearer token) and sends a caller without
// credentials to the sign-in page; then it reads through the API routes
// (status, health, throughput, queues, dead letters, pools, sources, the
// log level, the audit) with the same credentials. Each action (re-drive,
// purge, pause, resume, resize, the log level) is a route that needs
// RoleOperator and, with a session, its CSRF token (htmx sends it in the
// header admin.CSRFHeader; every action form posts where it acts without
// scripts too, carrying it in its field admin.CSRFField, and is answered
// with a whole page: a re-drive's or purge's confirmation and result on
// a page of their own), and
// passes the call on to the API route that does it, which checks the role and the token
// again and records the audit entry; an action the UI refuses itself
// (a malformed form) is audited as failed under the UI's route. A viewer
// sees no action buttons.
//
// Every response carries a Content-Security-Policy that allows scripts,
// styles and requests only from the server itself and no inline script;
// htmx is configured through a meta element.
//
// Applications add pages through the fx group PagesGroup (AsPage): a Page
// returns tables (Content) and the UI draws them.
package ui
