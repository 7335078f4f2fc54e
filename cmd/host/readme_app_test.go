package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// README's "Your own application" works as written in an empty
// directory: its main.go, its test and its config.yaml, in a module of
// their own that points at this checkout, tidy (from the module cache
// only), vet, pass their test and validate the configuration.
func TestREADMEOwnApplication(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module of its own")
	}
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	text := string(readme)
	from := strings.Index(text, "## Your own application")
	require.GreaterOrEqual(t, from, 0, "README has the section")
	to := strings.Index(text[from+1:], "\n## ")
	require.Greater(t, to, 0)
	section := text[from : from+1+to]
	var gos, yamls []string
	for _, m := range regexp.MustCompile("(?s)```(\\w+)\\n(.*?)```").FindAllStringSubmatch(section, -1) {
		switch m[1] {
		case "go":
			gos = append(gos, m[2])
		case "yaml":
			yamls = append(yamls, m[2])
		}
	}
	require.Len(t, gos, 2, "main.go and its test")
	require.Len(t, yamls, 1, "config.yaml")

	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "invoices")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for name, body := range map[string]string{"main.go": gos[0], "main_test.go": gos[1], "config.yaml": yamls[0]} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600))
	}
	gobin := os.Getenv("GO")
	if gobin == "" {
		gobin = "go"
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(gobin, args...)
		cmd.Dir = dir
		// The environment's GOPROXY: tidy reads the module cache first and
		// fetches only what it lacks (modules that no build of the
		// checkout needed, such as cobra's Windows-only mousetrap, are not
		// there on a fresh machine).
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), out)
		return string(out)
	}
	run("mod", "init", "example.com/invoices")
	// The repository's go.sum holds the checksums of every module the
	// application needs, so tidy verifies against it without asking the
	// checksum database (which a machine without network cannot reach).
	sums, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), sums, 0o600))
	run("mod", "edit", "-require=github.com/plba/plba@v0.0.0", "-replace=github.com/plba/plba="+root)
	run("mod", "tidy")
	run("vet", "./...")
	run("test", "-count=1", "./...")
	require.Contains(t, run("run", ".", "config", "validate", "--config", "config.yaml"), "configuration valid")
}
