package admin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Role is what an identity may do on the admin server. Roles are ordered:
// each one may do everything the one before it may.
type Role string

// The roles, weakest first. A Route declares the role it requires; the
// empty Role means RoleViewer, so a route is closed unless it says
// otherwise.
const (
	// RolePublic marks a route that needs no credentials at all (a
	// webhook with its own signature check, say). Its calls are audited
	// only as its handler records them (Audit), with authentication on:
	// anyone may make them. Probes and metrics are public on their own
	// listener, not through this role.
	RolePublic Role = "public"
	// RoleViewer reads: status, queues, dead letters without payload
	// changes, pools, sources, the audit.
	RoleViewer Role = "viewer"
	// RoleOperator also acts: pause, resume, resize, re-drive, purge,
	// enqueue, the log level.
	RoleOperator Role = "operator"
	// RoleAdmin also reads the effective configuration and pprof.
	RoleAdmin Role = "admin"
)

// rank orders the roles; 0 is unknown.
func (r Role) rank() int {
	switch r {
	case RolePublic:
		return 1
	case RoleViewer, "":
		return 2
	case RoleOperator:
		return 3
	case RoleAdmin:
		return 4
	}
	return 0
}

// Valid reports whether r is one of the roles (the empty Role is
// RoleViewer).
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether an identity with role r may call a route that
// requires need.
func (r Role) Allows(need Role) bool {
	return r.rank() > 0 && need.rank() > 0 && r.rank() >= need.rank()
}

// ParseRole parses the name of a role an identity can hold (viewer,
// operator or admin).
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleViewer, RoleOperator, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want viewer, operator or admin)", s)
}

// Identity is who made a request: a token's or a user's name and role.
type Identity struct {
	// Name is the token's or user's name ("anonymous" when
	// authentication is off).
	Name string `json:"name"`
	// Role is what the identity may do.
	Role Role `json:"role"`
	// Kind is how it signed in: "token", "session" or "none".
	Kind string `json:"kind"`
}

type identityKey struct{}

// WithIdentity returns ctx carrying id. The admin server's authentication
// sets it on every request it lets through.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity a request was made by, if the server
// authenticated it.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// changesState reports whether pattern, an http.ServeMux pattern, names a
// method that changes state (POST, PUT, PATCH, DELETE). A pattern without
// a method (any method) is not refused: its handler chooses what it does.
func changesState(pattern string) bool {
	i := strings.IndexAny(pattern, " \t") // as http.ServeMux splits a pattern
	if i < 0 {
		return false
	}
	method := pattern[:i]
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}
