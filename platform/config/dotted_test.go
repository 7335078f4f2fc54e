package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/config"
)

// ResourceConfig has a map of strings whose names have dots in them
// (OpenTelemetry resource attributes: deployment.environment.name).
type ResourceConfig struct {
	Attributes map[string]string `koanf:"attributes"`
}

// TestDottedNamesOfAStringMapAreKept: the loader splits a name with a "."
// into nested keys, quoted or not; a map of plain strings takes the
// leaves back under the name as written (deployment.environment.name),
// from a file or --set, instead of refusing the name.
func TestDottedNamesOfAStringMapAreKept(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("resource", ResourceConfig{}))
	f := writeFile(t, "res.yaml", "resource:\n  attributes:\n    deployment.environment.name: prod\n    \"service.namespace\": shop\n    team: core\n")
	c, err := config.Load(config.Options{Registry: r, Environ: []string{}, Files: []string{f},
		Sets: []string{"resource.attributes.cloud.region=eu-west-1"}})
	require.NoError(t, err)
	var rc ResourceConfig
	require.NoError(t, c.Decode("resource", &rc))
	require.Equal(t, map[string]string{
		"deployment.environment.name": "prod", "service.namespace": "shop", "team": "core", "cloud.region": "eu-west-1",
	}, rc.Attributes)
}

// Level is a named string type: a map of it keeps the dotted-name problem.
type Level string

// LevelsConfig is a map of a named string type (lifecycle.policies).
type LevelsConfig struct {
	Levels map[string]Level `koanf:"levels"`
}

// TestAnEmptyMappingIsNoDottedName: an entry written as an empty mapping
// where a string is expected had no "." in its name: the problem says
// what it got, not that a name with a "." ("") was split.
func TestAnEmptyMappingIsNoDottedName(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("logs", LevelsConfig{}))
	f := writeFile(t, "levels.yaml", "logs:\n  levels:\n    web: {}\n    db.eu: debug\n")
	_, err := config.Load(config.Options{Registry: r, Environ: []string{}, Files: []string{f}})
	require.Error(t, err)
	require.Contains(t, err.Error(), `logs.levels.web: expected a string, got`)
	require.NotContains(t, err.Error(), `()`)
	require.Contains(t, err.Error(), `logs.levels.db: a name with a "." ("db.eu")`, "a dotted name is still explained")
}
