package control_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/control"
	"github.com/plba/plba/platform/worker"
)

// TestDeadActionAuditBoundsItsFilter re-drives and purges with a filter
// whose kind and reason are large and carry line breaks and a
// bidirectional override: the audit entry records the filter cleaned and
// bounded as every other text of an entry (a client cannot grow the
// audit ring by a megabyte an entry, nor forge a line in it).
func TestDeadActionAuditBoundsItsFilter(t *testing.T) {
	b, store, _ := backends()[0].open(t)
	e := newEnv(t, b, store, worker.PoolConfig{Concurrency: 1})
	big := strings.Repeat("k", 200_000) + "\nforged line\u202e"
	for _, dry := range []bool{true, false} {
		e.mustCall(http.StatusOK, "POST", control.Prefix+"/queues/"+testQueue+"/dead/purge",
			control.DeadAction{Filter: control.DeadFilter{Kind: "\r\nforged" + big, Reason: big}, DryRun: dry}, nil)
		var page admin.AuditPage
		e.mustCall(http.StatusOK, "GET", admin.AuditPath+"?limit=1", nil, &page)
		require.Len(t, page.Entries, 1)
		en := page.Entries[0]
		raw, err := json.Marshal(en)
		require.NoError(t, err)
		require.Less(t, len(raw), 16<<10, "dry run %v: the entry holds the filter unbounded: %d bytes", dry, len(raw))
		f, ok := en.Params["filter"].(map[string]any)
		require.True(t, ok, "dry run %v: params.filter: %#v", dry, en.Params["filter"])
		for _, k := range []string{"kind", "reason"} {
			s, _ := f[k].(string)
			require.NotEmpty(t, s, k)
			require.LessOrEqual(t, utf8.RuneCountInString(s), 1025, k)
			require.NotContains(t, s, "\n", k)
			require.NotContains(t, s, "\r", k)
			require.NotContains(t, s, "\u202e", k)
		}
	}
}
