package platform_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

var echoRoute = worker.SupplyRoute(task.Route{Kind: "echo", Queue: "echoes", Handler: task.HandlerFunc(func(context.Context, *task.Task) error {
	return nil
})})

// buildErr builds (does not start) the platform with the echo route and
// returns the configuration problems the build reports.
func buildErr(t *testing.T, sets ...string) []config.Problem {
	t.Helper()
	app := fx.New(fx.NopLogger, platform.Module(load(t, sets...), platform.Info{}), echoRoute)
	err := app.Err()
	require.Error(t, err)
	var ce *config.Error
	require.True(t, errors.As(err, &ce), "not a configuration error: %v", err)
	return ce.Problems
}

// TestWorkersForAnUnknownQueueIsAConfigError: workers.<name> for a queue no
// route uses is a configuration error naming the key and the known
// queues. A typo used to create a pool of its own (and, on JetStream, a
// stream) while the real queue ran with the defaults.
func TestWorkersForAnUnknownQueueIsAConfigError(t *testing.T) {
	t.Parallel()
	ps := buildErr(t, "workers.echoez.concurrency=2")
	require.Len(t, ps, 1)
	require.Equal(t, "workers.echoez", ps[0].Key)
	require.Equal(t, `no route uses queue "echoez" (known queues: default, echoes)`, ps[0].Msg)

	app := fx.New(fx.NopLogger, platform.Module(load(t, "workers.echoes.concurrency=2", "workers.default.max_attempts=3"), platform.Info{}), echoRoute)
	require.NoError(t, app.Err(), "a routed queue and the defaults entry are fine")
}

// TestMaxDeliverNotAboveMaxAttemptsIsAConfigError: on JetStream, a
// max_deliver that is not above a queue's max_attempts is a configuration
// error naming both keys. The server counts a delivery given back before
// a delayed task's NotBefore as one of max_deliver: equal to the
// attempts, it left a delayed task one attempt short, and with 1 it
// dead-lettered the task without running it
// (TestEarlyDeliveryIsNotAnAttempt in platform/queue/jetstream: 2
// attempts of 3). Equal used to be accepted.
func TestMaxDeliverNotAboveMaxAttemptsIsAConfigError(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		maxDeliver, attempts string
		msg                  string
	}{
		{"3", "5", "3 is not above workers.echoes.max_attempts (5)"},
		{"5", "5", "5 is not above workers.echoes.max_attempts (5)"},
		{"1", "1", "1 is not above workers.echoes.max_attempts (1)"},
	} {
		ps := buildErr(t, "queue.backend=jetstream", "queue.jetstream.max_deliver="+c.maxDeliver, "workers.echoes.max_attempts="+c.attempts)
		require.Len(t, ps, 1)
		require.Equal(t, "queue.jetstream.max_deliver", ps[0].Key)
		require.Contains(t, ps[0].Msg, c.msg)
		require.Contains(t, ps[0].Msg, `kind "echo"`)
	}

	for _, sets := range [][]string{
		{"queue.backend=jetstream", "queue.jetstream.max_deliver=6", "workers.echoes.max_attempts=5"},
		{"queue.backend=jetstream", "queue.jetstream.max_deliver=-1", "workers.echoes.max_attempts=50"},
		{"queue.backend=memory", "queue.jetstream.max_deliver=3", "workers.echoes.max_attempts=5"},
	} {
		app := fx.New(fx.NopLogger, platform.Module(load(t, sets...), platform.Info{}), echoRoute)
		require.NoError(t, app.Err(), "%v", sets)
	}
}
