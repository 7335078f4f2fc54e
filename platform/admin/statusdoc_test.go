package admin_test

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/lifecycle"
)

// TestStatusIsDocumented: the OpenAPI document describes the body of GET
// /admin/v1/status field for field (admin.Status and each component's
// lifecycle.Status), with the policy absent for a component that never
// fails after start (never_fails).
func TestStatusIsDocumented(t *testing.T) {
	t.Parallel()
	type schema struct {
		Ref        string `json:"$ref"`
		Properties map[string]struct {
			Enum        []string `json:"enum"`
			Description string   `json:"description"`
			Items       struct {
				Ref string `json:"$ref"`
			} `json:"items"`
		} `json:"properties"`
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Content map[string]struct {
					Schema schema `json:"schema"`
				} `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]schema `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(control.OpenAPI(), &doc))
	ref := doc.Paths[admin.StatusPath]["get"].Responses["200"].Content["application/json"].Schema.Ref
	require.Equal(t, "#/components/schemas/Status", ref)
	status := doc.Components.Schemas["Status"]
	require.Equal(t, jsonFields(reflect.TypeFor[admin.Status]()), keys(status.Properties))
	require.Equal(t, "#/components/schemas/Component", status.Properties["components"].Items.Ref)
	comp := doc.Components.Schemas["Component"]
	require.Equal(t, jsonFields(reflect.TypeFor[lifecycle.Status]()), keys(comp.Properties))
	require.Equal(t, []string{string(lifecycle.StopHost), string(lifecycle.StayDegraded)}, comp.Properties["policy"].Enum)
	require.Contains(t, comp.Properties["policy"].Description, "absent for a component that never fails after start")
	states := []string{string(lifecycle.Starting), string(lifecycle.Running), string(lifecycle.Paused), string(lifecycle.Degraded),
		string(lifecycle.Draining), string(lifecycle.Stopped), string(lifecycle.Failed)}
	require.ElementsMatch(t, states, comp.Properties["state"].Enum)
}

// jsonFields names the JSON fields of struct type t, sorted.
func jsonFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// keys returns m's keys, sorted.
func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
