package host

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/plba/plba/platform/source"
)

// failing is a source whose Run fails at once, after waiting for start
// when it is set; the third Run closes third.
type failing struct {
	name  string
	start <-chan struct{}
	runs  int
	third chan struct{}
	once  sync.Once
}

func (s *failing) Name() string { return s.name }
func (s *failing) Run(ctx context.Context, _ source.Emitter) error {
	if s.start != nil {
		select {
		case <-s.start:
		case <-ctx.Done():
			return nil
		}
	}
	if s.runs++; s.runs >= 3 && s.third != nil {
		s.once.Do(func() { close(s.third) })
	}
	return errors.New(s.name + " is broken")
}

// TestFatalFailureNamesTheComponentThatStoppedTheHost: a host stopped by
// a component whose policy is "stop" names that component and its
// error, not another that had failed before under the "degrade" policy
// and kept the host up. It named the failed component first by name
// (source/a), which the operator then went to fix while the one that
// stopped the host (source/b) went unmentioned.
func TestFatalFailureNamesTheComponentThatStoppedTheHost(t *testing.T) {
	aFailed := make(chan struct{})
	a := &failing{name: "a", third: aFailed}
	b := &failing{name: "b", start: aFailed}
	app := App("two", fx.Provide(
		source.AsSource(func() *failing { return a }),
		fx.Annotate(func() source.Source { return b }, fx.ResultTags(`group:"task.sources"`)),
	))
	r := cli(t, []string{"run", "--set", "admin.listen=127.0.0.1:0", "--set", "log.level=error",
		"--set", "sources.restart_initial=10ms", "--set", "sources.crash_loop_limit=1",
		"--set", "lifecycle.policies.source/b=stop"}, app)
	require.Equal(t, ExitFailure, r.code, r.stderr)
	require.Contains(t, r.stderr, "component source/b failed: ", r.stderr)
	require.Contains(t, r.stderr, "b is broken", r.stderr)
	require.NotContains(t, r.stderr, "component source/a failed", r.stderr)
}
