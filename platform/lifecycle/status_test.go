package lifecycle

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStatusOfAComponentThatNeverFailsClaimsNoPolicy: a component
// registered with NeverFails (a pool, the queue backend) never moves to
// failed after its start, so no policy of its ever acts: its status says
// so (never_fails) and shows no policy, whatever its default; another
// component shows its policy.
func TestStatusOfAComponentThatNeverFailsClaimsNoPolicy(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(nil, nil)
	reg.MustRegister("queue/memory", StopHost, NeverFails())
	reg.MustRegister("pool/default", StayDegraded, NeverFails())
	reg.MustRegister("mailbox", StopHost)
	byName := map[string]map[string]any{}
	for _, s := range reg.Snapshot() {
		raw, err := json.Marshal(s)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		byName[s.Name] = m
		if s.Name != "mailbox" {
			require.Empty(t, s.Policy, "%s", s.Name)
			require.True(t, s.NeverFails, "%s", s.Name)
		}
	}
	for _, name := range []string{"queue/memory", "pool/default"} {
		require.NotContains(t, byName[name], "policy", "%s: %v", name, byName[name])
		require.Equal(t, true, byName[name]["never_fails"], "%s: %v", name, byName[name])
	}
	require.Equal(t, "stop", byName["mailbox"]["policy"])
	require.NotContains(t, byName["mailbox"], "never_fails")
}
