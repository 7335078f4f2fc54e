package control

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3.1 document of the admin API: every route of
// this package and the admin server's own (status, log level, audit,
// session, probes, metrics). Each operation names its role in x-role.
// platform's TestOpenAPIMatchesRoutes compares it, both ways, with the
// routes the platform's admin server really registers (Server.Routes).
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3.1 document of the admin API.
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

func (a *API) openAPI(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPIDoc)
	return nil
}
