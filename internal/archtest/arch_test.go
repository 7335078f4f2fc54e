package archtest

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const mod = "github.com/plba/plba"

// imports lists, for each package matching pattern, its (direct or, with
// deps, transitive) imports.
func imports(t *testing.T, pattern string, deps bool) map[string][]string {
	t.Helper()
	args := []string{"list", "-e", "-f", `{{.ImportPath}}:{{join .Imports " "}}`}
	if deps {
		args = []string{"list", "-e", "-deps", "-f", `{{.ImportPath}}:{{join .Imports " "}}`}
	}
	cmd := exec.Command("go", append(args, pattern)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok && strings.Contains(string(ee.Stderr), "matched no packages") {
		return nil
	}
	require.NoError(t, err, "go list %s", pattern)
	res := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imps, _ := strings.Cut(line, ":")
		res[pkg] = strings.Fields(imps)
	}
	return res
}

func TestPlatformImportsNoModulesOrApps(t *testing.T) {
	t.Parallel()
	for pkg, imps := range imports(t, "./platform/...", false) {
		for _, imp := range imps {
			require.False(t, strings.HasPrefix(imp, mod+"/modules/") || strings.HasPrefix(imp, mod+"/apps/"),
				"%s imports %s: platform must not depend on modules/ or apps/", pkg, imp)
		}
	}
}

func TestModulesImportNoApps(t *testing.T) {
	t.Parallel()
	for pkg, imps := range imports(t, "./modules/...", false) {
		for _, imp := range imps {
			require.False(t, strings.HasPrefix(imp, mod+"/apps/"), "%s imports %s: modules must stay domain-free", pkg, imp)
		}
	}
}

// The domain of every app depends on nothing of the runtime, even
// transitively.
func TestDomainIsPure(t *testing.T) {
	t.Parallel()
	forbidden := []string{mod + "/platform", mod + "/modules", "go.uber.org/fx", "go.uber.org/zap", "go.uber.org/dig",
		"go.opentelemetry.io", "github.com/emersion/go-imap", "github.com/nats-io", "github.com/jackc", "modernc.org/sqlite"}
	all := imports(t, "./apps/...", false)
	for pkg := range all {
		if !strings.Contains(pkg, "/domain") {
			continue
		}
		for dep := range imports(t, strings.Replace(pkg, mod, ".", 1), true) {
			for _, f := range forbidden {
				require.False(t, strings.HasPrefix(dep, f), "%s depends on %s", pkg, dep)
			}
		}
	}
}

// platform/task is the core data type: it depends on no fx, even
// transitively (the fx glue, AsRoute and SupplyRoute, lives in
// platform/worker beside the module that owns the groups).
func TestTaskImportsNoFx(t *testing.T) {
	t.Parallel()
	deps := imports(t, "./platform/task", true)
	require.NotEmpty(t, deps)
	for dep := range deps {
		require.False(t, strings.HasPrefix(dep, "go.uber.org/fx") || strings.HasPrefix(dep, "go.uber.org/dig"),
			"platform/task depends on %s: keep fx out of the core data type", dep)
	}
}

// The queue port and its backends sit below the worker pools: a backend
// keeps what the pools need kept (the pools' overrides, queue.OverrideStore)
// without depending on them, even transitively.
func TestQueueBackendsDoNotImportWorker(t *testing.T) {
	t.Parallel()
	for _, pkg := range []string{"./platform/queue", "./platform/queue/memory", "./platform/queue/jetstream"} {
		for dep := range imports(t, pkg, true) {
			require.NotEqual(t, mod+"/platform/worker", dep, "%s depends on platform/worker", pkg)
			require.NotEqual(t, mod+"/platform/control", dep, "%s depends on platform/control", pkg)
		}
	}
}
