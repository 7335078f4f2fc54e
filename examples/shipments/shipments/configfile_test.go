package shipments_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"example.com/shipments/shipments"
	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/config"
)

// The example's config.yaml follows its own advice (README.md, the
// webhook's signature): the queue remembers a sent notice's key at least
// as long as a signed event is accepted, so that the same event signed
// anew and posted again within the tolerance is dropped by the
// shipment's key, not sent twice.
func TestConfigFileKeysOutlastTheTolerance(t *testing.T) {
	c, err := config.Load(config.Options{Files: []string{"../config.yaml"}, Environ: []string{}})
	require.NoError(t, err)
	var s shipments.Config
	require.NoError(t, c.Decode(shipments.Section, &s))
	var q platform.QueueConfig
	require.NoError(t, c.Decode(platform.QueueSection, &q))
	require.Equal(t, platform.BackendMemory, q.Backend)
	require.GreaterOrEqual(t, q.Memory.DedupWindow, s.WebhookTolerance,
		"queue.memory.dedup_window against shipments.webhook_tolerance")
}
