package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/config"
)

// Every configuration section the host knows (platform and every app
// linked into the binary) is in README's configuration reference.
func TestREADMEListsEverySection(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	for _, name := range config.DefaultRegistry.Names() {
		require.True(t, strings.Contains(string(readme), "| `"+name+"` |") || strings.Contains(string(readme), "| `"+name+"."),
			"README's configuration reference lacks section %q", name)
	}
}
