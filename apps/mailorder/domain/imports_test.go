package domain_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDomainImportsNoRuntime keeps the domain pure: it must be readable,
// testable and reusable without the runtime, so none of its dependencies
// (direct or transitive) may be a platform, fx, logging, tracing, IMAP, NATS
// or SQL package.
func TestDomainImportsNoRuntime(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/plba/plba/apps/mailorder/domain").CombinedOutput()
	require.NoError(t, err, string(out))
	forbidden := []string{
		"github.com/plba/plba/platform",
		"github.com/plba/plba/modules",
		"go.uber.org/fx",
		"go.uber.org/zap",
		"go.uber.org/dig",
		"go.opentelemetry.io",
		"github.com/emersion/go-imap",
		"github.com/nats-io",
		"github.com/jackc",
		"modernc.org/sqlite",
		"database/sql",
	}
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/emersion/go-message", "sanity: the dependency list is real")
	for _, dep := range deps {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("domain depends on %s (forbidden prefix %s)", dep, f)
			}
		}
	}
}
