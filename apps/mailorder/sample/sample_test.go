package sample_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/domain"
	"github.com/plba/plba/apps/mailorder/sample"
)

// Every sample mail is understood as its variant says: valid ones yield
// the announced number of orders, invalid ones a human-readable rejection.
func TestSamplesParseAsAnnounced(t *testing.T) {
	t.Parallel()
	cfg := domain.Config{Now: func() time.Time { return time.Date(2025, 1, 6, 12, 0, 0, 0, time.UTC) }}
	orders := 0
	for i := 0; i < 200; i++ {
		raw := sample.Mail(i)
		require.Equal(t, raw, sample.Mail(i), "deterministic")
		v := sample.VariantOf(i)
		got, m, err := domain.BuildOrders(raw, cfg)
		if !v.Valid() {
			var rej *domain.RejectError
			require.ErrorAs(t, err, &rej, "mail %d (variant %d)", i, v)
			require.NotEmpty(t, rej.Reason)
			continue
		}
		require.NoError(t, err, "mail %d (variant %d)", i, v)
		require.Len(t, got, v.Orders(), "mail %d", i)
		require.Equal(t, sample.MessageID(i), m.MessageID)
		for _, o := range got {
			require.NotEmpty(t, o.Lines)
			require.NotEmpty(t, o.Customer)
		}
		orders += len(got)
	}
	st := sample.Count(200)
	require.Equal(t, orders, st.Orders)
	require.Equal(t, 200, st.Valid+st.Invalid)
	require.Positive(t, st.Invalid)
}

func TestOrderMailHasOneCSVOrder(t *testing.T) {
	t.Parallel()
	for i := 0; i < 50; i++ {
		orders, m, err := domain.BuildOrders(sample.OrderMail(i), domain.Config{})
		require.NoError(t, err)
		require.Len(t, orders, 1)
		require.Equal(t, sample.MessageID(i), m.MessageID)
		require.Len(t, orders[0].Lines, i%4+1)
	}
}
