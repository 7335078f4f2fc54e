package config_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/config"
)

// FuzzLoad feeds arbitrary bytes to Load as a YAML file: it must never
// panic, and every failure must be a *config.Error.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		"",
		"server:\n  port: 1\n",
		"server: {port: four, hots: x}\n",
		"workers:\n  default:\n    concurrency: -3\n  orders: {concurrency: 4}\n",
		"queue.jetstream:\n  replicas: 3\nqueue: {jetstream: {url: x}}\n",
		"server:\n  tags: [a, {b: c}]\n  timeout: 5 parsecs\n",
		"- a\n- b\n",
		"? [a]\n: b\n",
		"server:\n  port: 99999999999999999999999\n",
		"a: &x [*x]\n",
		"server:\n  password_file: \"\"\n",
		"\tbad",
		"pools: {default: ~, orders: {concurrency: 2}}\n",
		"exporter: {headers: 5, endpoint: [x]}\n",
	} {
		f.Add([]byte(seed))
	}
	reg := testRegistry(f)
	// A map section without a declared default entry, and a secret map.
	require.NoError(f, reg.Declare("pools", map[string]PoolConfig{}))
	require.NoError(f, reg.Declare("exporter", ExporterConfig{}))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Load(config.Options{
			Files:    []string{"fuzz.yaml"},
			Environ:  []string{},
			Registry: reg,
			ReadFile: func(name string) ([]byte, error) {
				if name == "fuzz.yaml" {
					return data, nil
				}
				return nil, errors.New("no files in fuzzing")
			},
		})
		if err != nil {
			var cerr *config.Error
			require.ErrorAs(t, err, &cerr)
			require.NotEmpty(t, cerr.Problems)
			return
		}
		require.NotEmpty(t, c.Digest())
		var s ServerConfig
		require.NoError(t, c.Decode("server", &s))
	})
}
