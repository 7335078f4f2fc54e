package platform_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The module example in README.md is the code of Example, so it compiles
// and runs; this keeps the two the same.
func TestREADMEExampleIsTheExample(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	src, err := os.ReadFile("example_test.go")
	require.NoError(t, err)
	r := string(readme)
	start := strings.Index(r, "<!-- example:start -->\n```go\n")
	end := strings.Index(r, "```\n<!-- example:end -->")
	require.True(t, start >= 0 && end > start, "README example markers")
	snippet := r[start+len("<!-- example:start -->\n```go\n") : end]
	require.Contains(t, string(src), snippet, "README's example differs from Example in platform/example_test.go")
	require.GreaterOrEqual(t, strings.Count(snippet, "\n"), 20)
}
