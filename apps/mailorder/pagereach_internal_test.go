package mailorder

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/apps/mailorder/domain"
)

// manyOrders is a store of n orders, newest first, for the page alone.
type manyOrders struct {
	Store
	n int
}

func (s manyOrders) Count(context.Context) (int, error) { return s.n, nil }

func (s manyOrders) List(_ context.Context, limit int) ([]domain.Order, error) {
	out := make([]domain.Order, 0, min(limit, s.n))
	for i := range min(limit, s.n) {
		out = append(out, domain.Order{ID: fmt.Sprintf("o%04d", i), ReceivedAt: time.Unix(int64(s.n-i), 0)})
	}
	return out, nil
}

// TestOrdersPageSaysHowFarBackItReaches: the Orders page offers pages
// back to the newest maxOrdersPaged orders only; with more stored, it
// says so, rather than let its last page pass for the oldest orders.
func TestOrdersPageSaysHowFarBackItReaches(t *testing.T) {
	a := &App{cfg: DefaultConfig(), store: manyOrders{n: maxOrdersPaged + 100}}
	pg := ordersPage(a)
	last := fmt.Sprintf("%s=%d", ordersPageParam, maxOrdersPaged-pageOrders)
	c, err := pg.Render(httptest.NewRequest("GET", "/ui/apps/orders?"+last, nil))
	require.NoError(t, err)
	o := c.Sections[0]
	require.Len(t, o.Rows, pageOrders)
	require.Empty(t, o.Next, "the last page offered")
	require.Contains(t, o.Note, fmt.Sprintf("%d orders stored", maxOrdersPaged+100))
	require.Contains(t, o.Note, fmt.Sprintf("the newest %d", maxOrdersPaged), "the page says where its pages end")

	a.store = manyOrders{n: 30}
	c, err = pg.Render(httptest.NewRequest("GET", "/ui/apps/orders", nil))
	require.NoError(t, err)
	require.NotContains(t, c.Sections[0].Note, "newest 500", "all of them are offered")
}
