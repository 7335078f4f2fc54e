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
