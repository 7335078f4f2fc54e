package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/config"
)

// RetryConfig has float fields as the worker's back-off and the trace
// sampler do.
type RetryConfig struct {
	Multiplier float64 `koanf:"multiplier"`
	Ratio      float32 `koanf:"ratio"`
}

// TestNonFiniteFloatsAreRefused: YAML's .nan and .inf (and -.inf) decode
// into float64 without complaint, and a NaN passes every range check
// (NaN < 1 and NaN > 1 are both false): a back-off multiplier of .nan
// passed validation. The decoder refuses them, from a file, the
// environment and --set alike.
func TestNonFiniteFloatsAreRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts config.Options
		src  string
		key  string
	}{
		{name: "nan in file", opts: config.Options{Files: []string{"FILE"}}, src: "FILE", key: "retry.multiplier"},
		{name: "inf from env", opts: config.Options{Environ: []string{"PLBA_RETRY__MULTIPLIER=.inf"}}, src: "env PLBA_RETRY__MULTIPLIER", key: "retry.multiplier"},
		{name: "-inf from --set", opts: config.Options{Sets: []string{"retry.ratio=-.Inf"}}, src: "--set retry.ratio=...", key: "retry.ratio"},
		{name: "nan float32 from --set", opts: config.Options{Sets: []string{"retry.ratio=.NaN"}}, src: "--set retry.ratio=...", key: "retry.ratio"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := config.NewRegistry()
			require.NoError(t, r.Declare("retry", RetryConfig{Multiplier: 2, Ratio: 0.5}))
			opts := tc.opts
			opts.Registry = r
			if opts.Environ == nil {
				opts.Environ = []string{}
			}
			src := tc.src
			if len(opts.Files) > 0 {
				src = writeFile(t, "c.yaml", "retry:\n  multiplier: .nan\n")
				opts.Files = []string{src}
			}
			c, err := config.Load(opts)
			require.Nil(t, c)
			requireProblem(t, err, src, tc.key, "expected a finite number")
		})
	}
}
