package ui_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/worker"
)

// TestResizeFieldTakesWhatTheAPITakes: the pools' resize field bounds a
// size as the API does (1 to worker.MaxConcurrency); at 1024 the browser
// refused sizes the API takes, and a pool configured larger could not be
// resized from its own field.
func TestResizeFieldTakesWhatTheAPITakes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	c := e.client()
	c.signIn(operatorName)
	r := c.get("/ui/pools")
	require.Equal(t, http.StatusOK, r.code)
	require.Contains(t, r.body, fmt.Sprintf(`type="number" min="1" max="%d"`, worker.MaxConcurrency))
}
