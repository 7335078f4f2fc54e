package host

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/plba/plba/platform/config"
)

type billingConfig struct {
	URL     string `koanf:"url"`
	Retries int    `koanf:"retries"`
}

func (c billingConfig) Validate() error {
	if c.URL == "" {
		return config.Invalid("url", "required")
	}
	return nil
}

type reportsConfig struct {
	Every string `koanf:"every"`
}

var (
	billingModule = fx.Module("billing", config.Provide("show_test_billing", billingConfig{Retries: 3}))
	reportsModule = fx.Module("reports", config.Provide("show_test_reports", reportsConfig{Every: "1h"}))
)

// show prints the platform's sections, the host's and those of the
// composed apps (not of an app linked but not composed), effective values
// instead of zeros standing for defaults.
func TestShowComposedSectionsOnly(t *testing.T) {
	opts := []AppOption{OptionalApp("billing", billingModule), App("reports", reportsModule)}
	r := cli(t, []string{"config", "show"}, opts...)
	require.Equal(t, ExitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "show_test_reports:\n    every: 1h\n")
	require.NotContains(t, r.stdout, "show_test_billing")
	require.Contains(t, r.stdout, "capacity: 10000", "queue.memory.capacity: the real default")
	require.Contains(t, r.stdout, "restart_initial: 1s", "sources: the real defaults")
	require.Contains(t, r.stdout, "concurrency: 8", "workers.default: the real defaults")
	require.Contains(t, r.stdout, "host:\n")
}

// An incomplete configuration is printed, the missing required key marked,
// and the problems listed on stderr with exit status 2.
func TestShowIncompleteMarksAndExits2(t *testing.T) {
	opts := []AppOption{OptionalApp("billing", billingModule), App("reports", reportsModule)}
	r := cli(t, []string{"config", "show", "--set", "host.apps=[billing]", "--set", "workers.default.concurrency=oops"}, opts...)
	require.Equal(t, ExitUsage, r.code, r.stderr)
	require.Contains(t, r.stdout, "show_test_billing:\n    retries: 3\n    url: \"\" # problem: required\n")
	require.Contains(t, r.stdout, "concurrency: 8 # problem: ")
	require.Contains(t, r.stdout, "show_test_reports:")
	require.Contains(t, r.stderr, "show_test_billing.url: required")
	require.Contains(t, r.stderr, "--set workers.default.concurrency=...: workers.default.concurrency")
}
