package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/config"
)

// TestKeySetTwiceInOneSourceIsAProblem: a file may write a key dotted
// ("server.port: 1") or nested ("server: {port: 2}"); with both, one of
// the two values was dropped without a word, which one depending on map
// order (a run took 1, the next 2), and a value under a key that another
// line makes a mapping ("server.tls: true" and "server: {tls: {x: 1}}")
// was dropped too. Two environment variables naming one key in different
// case did the same. Each is a problem naming the key.
func TestKeySetTwiceInOneSourceIsAProblem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml string
		env        []string
		src, key   string
		msg        string
	}{
		{name: "dotted and nested", yaml: "server:\n  port: 2\nserver.port: 1\n", src: "FILE", key: "server.port", msg: "set twice"},
		{name: "value and mapping", yaml: "server.tls: true\nserver:\n  tls:\n    x: 1\n", src: "FILE", key: "server.tls", msg: "set twice"},
		{name: "env in two cases", env: []string{"PLBA_SERVER__PORT=1", "PLBA_server__port=2"}, src: "env PLBA_server__port", key: "server.port", msg: "set twice (also by PLBA_SERVER__PORT)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for range 8 { // map order varies from run to run
				opts := config.Options{Environ: tc.env}
				src := tc.src
				if tc.yaml != "" {
					src = writeFile(t, "c.yaml", tc.yaml)
					opts.Files = []string{src}
				}
				c, err := load(t, opts)
				require.Nil(t, c)
				requireProblem(t, err, src, tc.key, tc.msg)
			}
		})
	}
}
