package control_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/control"
)

// The OpenAPI document describes no error status as "OK": the probes'
// 503 says what it means (not live, not ready).
func TestOpenAPIErrorStatusesAreNotDescribedAsOK(t *testing.T) {
	t.Parallel()
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Description string `json:"description"`
			} `json:"responses"`
		} `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(control.OpenAPI(), &doc))
	for path, ops := range doc.Paths {
		for method, op := range ops {
			for code, r := range op.Responses {
				if strings.HasPrefix(code, "4") || strings.HasPrefix(code, "5") {
					require.NotEqual(t, "OK", r.Description, "%s %s answers %s", method, path, code)
				}
			}
		}
	}
	require.Equal(t, "not live", doc.Paths["/livez"]["get"].Responses["503"].Description)
	require.Equal(t, "not ready", doc.Paths["/readyz"]["get"].Responses["503"].Description)
	require.Equal(t, "not live or not ready", doc.Paths["/healthz"]["get"].Responses["503"].Description)
}
