package admin_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/config"
)

// TestOpenListenNamesWhereTheAddressCameFrom: a non-loopback
// admin.listen without credentials is a problem at admin.listen, named
// after the file, variable or flag that set the address, and the message
// names admin.auth. It was keyed admin.auth, which no layer set, and so
// read "default: admin.auth: ..." whatever set the address.
func TestOpenListenNamesWhereTheAddressCameFrom(t *testing.T) {
	t.Parallel()
	r := config.NewRegistry()
	require.NoError(t, r.Declare("admin", admin.DefaultConfig()))
	file := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(file, []byte("admin:\n  listen: 0.0.0.0:8080\n"), 0o600))
	for _, c := range []struct {
		name string
		opts config.Options
		want string
	}{
		{"file", config.Options{Files: []string{file}}, file},
		{"env", config.Options{Environ: []string{"PLBA_ADMIN__LISTEN=0.0.0.0:8080"}}, "env PLBA_ADMIN__LISTEN"},
		{"set", config.Options{Sets: []string{"admin.listen=0.0.0.0:8080"}}, "--set admin.listen=..."},
	} {
		opts := c.opts
		opts.Registry = r
		if opts.Environ == nil {
			opts.Environ = []string{}
		}
		_, err := config.Load(opts)
		var ce *config.Error
		require.True(t, errors.As(err, &ce), "%s: not a configuration error: %v", c.name, err)
		require.Len(t, ce.Problems, 1, "%s: %v", c.name, err)
		p := ce.Problems[0]
		require.Equal(t, c.want, p.Source, "%s: %v", c.name, err)
		require.Equal(t, "admin.listen", p.Key, "%s: %v", c.name, err)
		require.Contains(t, p.Msg, "0.0.0.0:8080 is not a loopback address and admin.auth has no credentials", c.name)
		require.Contains(t, p.Msg, "admin.auth.mode: none", c.name)
	}
}
