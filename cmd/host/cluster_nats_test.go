package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

var (
	natsBinOnce sync.Once
	natsBinPath string
	natsBinErr  error
)

// natsServerBinary builds the nats-server of the version this module
// depends on, once per test binary, into the host binary's directory
// (removed by TestMain).
func natsServerBinary(t testing.TB) string {
	t.Helper()
	natsBinOnce.Do(func() {
		natsBinPath = filepath.Join(filepath.Dir(hostBin), "nats-server")
		out, err := exec.Command("go", "build", "-o", natsBinPath, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsBinErr = fmt.Errorf("build nats-server: %w\n%s", err, out)
		}
	})
	require.NoError(t, natsBinErr)
	return natsBinPath
}

// freePort returns a free TCP port on loopback (closed again: a small
// race with other processes, acceptable in a test).
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// natsNode is one nats-server process of a test cluster.
type natsNode struct {
	name   string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// stop ends the node with SIGTERM (a clean shutdown) and waits.
func (n *natsNode) stop(t testing.TB) {
	t.Helper()
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
}

// startNATSCluster starts n nats-server processes with JetStream as one
// cluster on loopback (free ports, stores in temp dirs) and waits until
// JetStream answers on every node.
func startNATSCluster(t testing.TB, n int) []*natsNode {
	t.Helper()
	bin := natsServerBinary(t)
	nodes := make([]*natsNode, n)
	routes := make([]string, n)
	cports := make([]int, n)
	for i := range nodes {
		nodes[i] = &natsNode{name: fmt.Sprintf("n%d", i+1), port: freePort(t), exited: make(chan struct{})}
		cports[i] = freePort(t)
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", cports[i])
	}
	for i, node := range nodes {
		dir := t.TempDir()
		conf := filepath.Join(dir, "nats.conf")
		require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
max_payload: 8MB
jetstream {
  store_dir: %q
  max_memory_store: 64MB
  max_file_store: 2GB
}
cluster {
  name: plba-test
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, node.name, node.port, filepath.Join(dir, "store"), cports[i], strings.Join(routes, ", "))), 0o600))
		node.log = filepath.Join(dir, "nats.log")
		logf, err := os.Create(node.log)
		require.NoError(t, err)
		node.cmd = exec.Command(bin, "-c", conf)
		node.cmd.Stdout, node.cmd.Stderr = logf, logf
		require.NoError(t, node.cmd.Start())
		go func() {
			_ = node.cmd.Wait()
			_ = logf.Close()
			close(node.exited)
		}()
		t.Cleanup(func() {
			_ = node.cmd.Process.Kill()
			<-node.exited
		})
	}
	for _, node := range nodes {
		require.Eventually(t, func() bool { return jetStreamAnswers(node.url()) }, 60*time.Second, 200*time.Millisecond,
			"JetStream on %s: %s", node.name, readTail(node.log))
	}
	require.Eventually(t, func() bool { return r3Placed(nodes[0].url()) }, 60*time.Second, 200*time.Millisecond,
		"an R3 stream can be placed: %s", readTail(nodes[0].log))
	return nodes
}

// r3Placed reports whether the cluster places an R3 stream (every peer
// known to the meta leader): it creates one and deletes it.
func r3Placed(url string) bool {
	nc, err := nats.Connect(url, nats.Timeout(time.Second), nats.MaxReconnects(0))
	if err != nil {
		return false
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PLACEMENT_PROBE", Subjects: []string{"placement.probe"}, Replicas: 3}); err != nil {
		return false
	}
	return js.DeleteStream(ctx, "PLACEMENT_PROBE") == nil
}

// jetStreamAnswers reports whether the server at url serves JetStream
// with a meta leader (an R3 stream can be created).
func jetStreamAnswers(url string) bool {
	nc, err := nats.Connect(url, nats.Timeout(time.Second), nats.MaxReconnects(0))
	if err != nil {
		return false
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := js.AccountInfo(ctx)
	return err == nil && info != nil
}

func readTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// streamLeader returns the name of the server that leads stream, asked
// of the server at url.
func streamLeader(url, stream string) (string, error) {
	nc, err := nats.Connect(url, nats.Timeout(time.Second), nats.MaxReconnects(0))
	if err != nil {
		return "", err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("stream %s: %w", stream, err)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", fmt.Errorf("stream %s has no leader", stream)
	}
	return info.Cluster.Leader, nil
}
