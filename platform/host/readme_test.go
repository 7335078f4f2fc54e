package host_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestREADMEOwnApplication follows README's "Your own application" in an
// empty module: the main.go, config.yaml and test it shows, a replace to
// this repository, go mod tidy (from the module cache, no network), vet,
// the test, and `config validate` on the config file. The README's code
// is what a newcomer types; this keeps it working.
func TestREADMEOwnApplication(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a separate module (-short)")
	}
	t.Parallel()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	r := string(readme)
	start := strings.Index(r, "## Your own application")
	require.GreaterOrEqual(t, start, 0, "README section")
	end := strings.Index(r[start+1:], "\n## ")
	require.Greater(t, end, 0)
	section := r[start : start+1+end]

	blocks := regexp.MustCompile("(?s)```(\\w+)\\n(.*?)```").FindAllStringSubmatch(section, -1)
	var gos, yamls, shs []string
	for _, b := range blocks {
		switch b[1] {
		case "go":
			gos = append(gos, b[2])
		case "yaml":
			yamls = append(yamls, b[2])
		case "sh":
			shs = append(shs, b[2])
		}
	}
	require.Len(t, gos, 2, "main.go and its test")
	require.Len(t, yamls, 1, "config.yaml")
	require.NotEmpty(t, shs)
	require.Contains(t, shs[0], "go mod init example.com/invoices")
	require.Contains(t, shs[0], "-replace=github.com/plba/plba=../plba")

	dir := t.TempDir()
	write := func(name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600))
	}
	write("go.mod", "module example.com/invoices\n\ngo 1.26.0\n\nrequire github.com/plba/plba v0.0.0\n\nreplace github.com/plba/plba => "+root+"\n")
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	write("go.sum", string(sum))
	write("main.go", gos[0])
	write("main_test.go", gos[1])
	write("config.yaml", yamls[0])

	gocmd := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := gocmd("mod", "tidy"); err != nil {
		if strings.Contains(out, "GOPROXY=off") || strings.Contains(out, "module lookup disabled") {
			t.Skipf("a module the walkthrough needs is not in the module cache (no network here): %s", out)
		}
		t.Fatalf("go mod tidy: %v\n%s", err, out)
	}
	out, err := gocmd("vet", ".")
	require.NoError(t, err, out)
	out, err = gocmd("test", "-count=1", ".")
	require.NoError(t, err, out)
	out, err = gocmd("run", ".", "config", "validate", "--config", "config.yaml")
	require.NoError(t, err, out)
	require.Contains(t, out, "configuration valid (config.yaml")
}
