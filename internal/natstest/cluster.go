package natstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue/jetstream/embedded"
)

// StartCluster starts n nats-servers with JetStream on loopback, random
// ports, forming one cluster, and waits until JetStream answers.
func StartCluster(t testing.TB, n int) []*embedded.Server {
	t.Helper()
	// The route ports are reserved by listening and closing, so another
	// test may take one before the server binds it: try again with new
	// ports when a cluster does not come up.
	var srvs []*embedded.Server
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if srvs, err = tryCluster(t, n); err == nil {
			break
		}
		t.Logf("cluster start, attempt %d: %v", attempt, err)
	}
	require.NoError(t, err)
	// JetStream answers once the meta group elected a leader.
	nc, err := nats.Connect(srvs[0].ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	// A stream of n replicas also needs every peer online and current.
	require.Eventually(t, func() bool {
		for _, s := range srvs {
			if !s.NATS().JetStreamIsClustered() || !s.NATS().JetStreamIsCurrent() {
				return false
			}
		}
		_, err := nc.Request("$JS.API.INFO", nil, time.Second)
		return err == nil
	}, 30*time.Second, 20*time.Millisecond, "a JetStream meta leader and every peer current")
	return srvs
}

// tryCluster starts n clustered servers once; on failure it shuts down
// those that started and returns the error.
func tryCluster(t testing.TB, n int) ([]*embedded.Server, error) {
	t.Helper()
	// A JetStream cluster needs its routes configured up front: reserve n
	// loopback ports for them.
	routes := make([]*url.URL, n)
	ports := make([]int, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ports[i] = l.Addr().(*net.TCPAddr).Port
		require.NoError(t, l.Close())
		routes[i] = &url.URL{Scheme: "nats", Host: l.Addr().String()}
	}
	srvs := make([]*embedded.Server, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		opts, err := embedded.Config{
			StoreDir:   t.TempDir(),
			Listen:     "127.0.0.1:0",
			ServerName: fmt.Sprintf("n%d", i+1),
		}.Options()
		require.NoError(t, err)
		opts.Cluster = server.ClusterOpts{Name: "plba-test", Host: "127.0.0.1", Port: ports[i]}
		opts.Routes = routes
		wg.Go(func() {
			srvs[i], errs[i] = embedded.StartWithOptions(t.Context(), opts, 30*time.Second, nil)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range srvs {
			if s != nil {
				_ = s.Shutdown(context.Background())
			}
		}
		return nil, err
	}
	for i := range n {
		t.Cleanup(func() { _ = srvs[i].Shutdown(context.Background()) })
	}
	return srvs, nil
}
