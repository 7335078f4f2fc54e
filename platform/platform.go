// Package platform composes every platform capability into one fx.Option:
// configuration, logging, the component registry, health, the admin server
// and (as they are configured) the queue backend, worker pools, sources and
// telemetry. cmd/host adds the applications on top.
package platform

import (
	"time"

	"go.uber.org/fx"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/admin/ui"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
)

// Section names the platform declares.
const (
	LifecycleSection = "lifecycle"
	AdminSection     = "admin"
	HealthSection    = "health"
)

var (
	lifecycleSection = config.Declare(LifecycleSection, lifecycle.DefaultConfig())
	adminSection     = config.Declare(AdminSection, admin.DefaultConfig()).Derived(withAuditStream)
	healthSection    = config.Declare(HealthSection, DefaultHealthConfig())
)

// HealthConfig is the "health" configuration section.
type HealthConfig struct {
	// Interval is the default interval between runs of a check. Default
	// 10s, at least 10ms.
	Interval time.Duration `koanf:"interval"`
	// Timeout is the default timeout of one run of a check. Default 2s,
	// at least 1ms.
	Timeout time.Duration `koanf:"timeout"`
}

// The shortest health.interval and health.timeout Validate accepts.
const (
	minHealthInterval = 10 * time.Millisecond
	minHealthTimeout  = time.Millisecond
)

// DefaultHealthConfig returns the defaults documented on HealthConfig.
func DefaultHealthConfig() HealthConfig {
	return HealthConfig{Interval: 10 * time.Second, Timeout: 2 * time.Second}
}

// Validate checks the section.
func (c HealthConfig) Validate() error {
	var ps config.Problems
	// A check every nanosecond runs back to back, a core spent on it; one
	// bounded by a nanosecond always fails.
	if c.Interval < minHealthInterval {
		ps.Add("interval", "want at least %s (got %s)", minHealthInterval, c.Interval)
	}
	if c.Timeout < minHealthTimeout {
		ps.Add("timeout", "want at least %s (got %s)", minHealthTimeout, c.Timeout)
	}
	return ps.Err()
}

// Info identifies the running build for the status endpoint.
type Info struct {
	Version string
	Commit  string
}

// Module returns the platform as one fx.Option for the loaded cfg.
func Module(cfg *config.Config, info Info) fx.Option {
	started := time.Now()
	return fx.Options(fxLogger(), fx.Module("platform",
		fx.Supply(cfg),
		lifecycleSection.Provide(),
		adminSection.Provide(),
		healthSection.Provide(),
		logging(),
		lifecycle.Module,
		fx.Provide(func(c HealthConfig) health.Options {
			return health.Options{DefaultInterval: c.Interval, DefaultTimeout: c.Timeout}
		}),
		health.Module,
		fx.Supply(admin.StatusInfo{Version: info.Version, Commit: info.Commit, ConfigDigest: cfg.Digest(), Started: started}),
		admin.Module,
		ui.Module,
		fx.Invoke(func(*admin.Server) {}),
		taskRuntime(),
		auditStore(),
	))
}
