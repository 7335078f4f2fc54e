package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/config"
)

// SecretListConfig has a secret list of strings.
type SecretListConfig struct {
	Keys []string `koanf:"keys" secret:"true"`
}

// A _file key next to a secret mapping or list (exporter headers) is a
// problem at that key: a file holds one string. Load panicked (SetString
// on a map) and took the host down with a stack trace.
func TestSecretFileOfAMappingOrListIsAProblem(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("exporter", ExporterConfig{}))
	require.NoError(t, r.Declare("signing", SecretListConfig{}))
	secret := writeFile(t, "headers", "Authorization: Bearer t0ken\n")
	for _, tc := range []struct{ set, key string }{
		{"exporter.headers_file=" + secret, "exporter.headers_file"},
		{"signing.keys_file=" + secret, "signing.keys_file"},
	} {
		var err error
		require.NotPanics(t, func() {
			_, err = config.Load(config.Options{Registry: r, Environ: []string{}, Sets: []string{tc.set}})
		}, tc.set)
		requireProblem(t, err, "--set "+tc.key+"=...", tc.key, "a file holds one string")
		require.NotContains(t, err.Error(), "t0ken")
	}
}
