package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"
)

// Config is the "lifecycle" configuration section.
type Config struct {
	// StartTimeout bounds the whole start sequence. Default 15s.
	StartTimeout time.Duration `koanf:"start_timeout"`
	// StopTimeout bounds the whole stop sequence (drain included).
	// Default 30s.
	StopTimeout time.Duration `koanf:"stop_timeout"`
	// ShutdownDelay is how long readiness reports 503 before the stop
	// sequence begins, so load balancers notice. Default 0.
	ShutdownDelay time.Duration `koanf:"shutdown_delay"`
	// Policies overrides the failure policy of named components:
	// "stop" (the host exits with status 1) or "degrade" (stay up). The
	// host (platform/host) refuses a name that no component registered
	// while its graph was built has, and the name of a component
	// registered NeverFails, as a configuration problem.
	Policies map[string]Policy `koanf:"policies"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{StartTimeout: 15 * time.Second, StopTimeout: 30 * time.Second}
}

// Validate checks the section.
func (c Config) Validate() error {
	var errs []error
	if c.StartTimeout <= 0 {
		errs = append(errs, fmt.Errorf("start_timeout: must be positive (got %s)", c.StartTimeout))
	}
	if c.StopTimeout <= 0 {
		errs = append(errs, fmt.Errorf("stop_timeout: must be positive (got %s)", c.StopTimeout))
	}
	if c.ShutdownDelay < 0 {
		errs = append(errs, fmt.Errorf("shutdown_delay: must not be negative (got %s)", c.ShutdownDelay))
	}
	for name, p := range c.Policies {
		if p != StopHost && p != StayDegraded {
			errs = append(errs, fmt.Errorf("policies.%s: must be %q or %q (got %q)", name, StopHost, StayDegraded, p))
		}
	}
	return errors.Join(errs...)
}

// ExitFailure is the exit status the host uses when a component with the
// StopHost policy fails after start.
const ExitFailure = 1

// NewFromConfig returns the registry for the host: a component that fails
// with policy StopHost shuts the fx app down with exit status 1.
func NewFromConfig(cfg Config, sd fx.Shutdowner, log *zap.Logger) *Registry {
	return NewRegistry(cfg.Policies, func(name string, err error) {
		if log != nil {
			log.Error("component failed: stopping the host", zap.String("component", name), zap.Error(err))
		}
		_ = sd.Shutdown(fx.ExitCode(ExitFailure))
	})
}

// Track registers a component called name and appends fx hooks that run
// start and stop with the component's state following them: Starting ->
// Running (or Failed) on start, Draining -> Stopped on stop. Either func may
// be nil. opts tune the component as for Register.
func (r *Registry) Track(lc fx.Lifecycle, name string, def Policy, start, stop func(ctx context.Context) error, opts ...Option) (*Component, error) {
	c, err := r.Register(name, def, opts...)
	if err != nil {
		return nil, err
	}
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			c.BeginStart()
			if start != nil {
				if err := start(ctx); err != nil {
					c.mu.Lock()
					c.state, c.since, c.lastErr = Failed, r.now(), err.Error()
					c.mu.Unlock()
					return fmt.Errorf("%s: start: %w", name, err)
				}
			}
			if c.State() == Starting {
				c.Set(Running, nil)
			}
			return nil
		},
		OnStop: func(ctx context.Context) error {
			c.BeginStop()
			c.Set(Draining, nil)
			var err error
			if stop != nil {
				err = stop(ctx)
			}
			c.mu.Lock()
			c.state, c.since = Stopped, r.now()
			if err != nil {
				c.lastErr = err.Error()
			}
			c.mu.Unlock()
			if err != nil {
				return fmt.Errorf("%s: stop: %w", name, err)
			}
			return nil
		},
	})
	return c, nil
}

// Module provides the host's *Registry from Config.
var Module = fx.Module("lifecycle", fx.Provide(NewFromConfig))
