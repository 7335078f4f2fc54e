package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/plba/plba/platform"
	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/source"
	"github.com/plba/plba/platform/task"
	"github.com/plba/plba/platform/worker"
)

// churnCluster is a three-node cluster whose nodes can be stopped and
// started again on their stores and ports (a rolling restart).
type churnCluster struct {
	t    *testing.T
	opts []*server.Options
	mu   sync.Mutex
	srvs []*embedded.Server
}

func startChurnCluster(t *testing.T) *churnCluster {
	t.Helper()
	const n = 3
	free := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	routes := make([]*url.URL, n)
	rports := make([]int, n)
	for i := range n {
		rports[i] = free()
		routes[i] = &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", rports[i])}
	}
	c := &churnCluster{t: t, opts: make([]*server.Options, n), srvs: make([]*embedded.Server, n)}
	for i := range n {
		o, err := embedded.Config{StoreDir: t.TempDir(), Listen: fmt.Sprintf("127.0.0.1:%d", free()),
			ServerName: fmt.Sprintf("n%d", i+1)}.Options()
		require.NoError(t, err)
		o.Cluster = server.ClusterOpts{Name: "plba-churn", Host: "127.0.0.1", Port: rports[i]}
		o.Routes = routes
		c.opts[i] = o
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = c.start(i) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, s := range c.srvs {
			if s != nil {
				_ = s.Shutdown(context.Background())
			}
		}
	})
	c.waitCurrent()
	return c
}

func (c *churnCluster) start(i int) error {
	s, err := embedded.StartWithOptions(c.t.Context(), c.opts[i].Clone(), 30*time.Second, nil)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.srvs[i] = s
	c.mu.Unlock()
	return nil
}

func (c *churnCluster) url(i int) string {
	return fmt.Sprintf("nats://%s:%d", c.opts[i].Host, c.opts[i].Port)
}

// waitCurrent waits until every node is up, clustered and current.
func (c *churnCluster) waitCurrent() {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, s := range c.srvs {
			if s == nil || !s.NATS().JetStreamIsClustered() || !s.NATS().JetStreamIsCurrent() {
				return false
			}
		}
		return true
	}, 60*time.Second, 50*time.Millisecond, "every node current")
}

// restart stops node i and starts it again on its store.
func (c *churnCluster) restart(i int) {
	c.t.Helper()
	c.mu.Lock()
	s := c.srvs[i]
	c.srvs[i] = nil
	c.mu.Unlock()
	require.NoError(c.t, s.Shutdown(c.t.Context()))
	time.Sleep(time.Second)
	require.NoError(c.t, c.start(i))
	c.waitCurrent()
}

// stepDownAll asks every stream and consumer leader to step down.
func stepDownAll(nc *nats.Conn) int {
	var n int
	msg, err := nc.Request("$JS.API.STREAM.NAMES", nil, 2*time.Second)
	if err != nil {
		return 0
	}
	var names struct {
		Streams []string `json:"streams"`
	}
	if json.Unmarshal(msg.Data, &names) != nil {
		return 0
	}
	for _, s := range names.Streams {
		if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+s, nil, 2*time.Second); err == nil {
			n++
		}
		cm, err := nc.Request("$JS.API.CONSUMER.NAMES."+s, nil, 2*time.Second)
		if err != nil {
			continue
		}
		var cons struct {
			Consumers []string `json:"consumers"`
		}
		if json.Unmarshal(cm.Data, &cons) != nil {
			continue
		}
		for _, cn := range cons.Consumers {
			if _, err := nc.Request("$JS.API.CONSUMER.LEADER.STEPDOWN."+s+"."+cn, nil, 2*time.Second); err == nil {
				n++
			}
		}
	}
	return n
}

// countedOrders is orders that counts each key's emits, failed ones too:
// an emit that failed may have stored its tasks, and one emitted again
// is told again.
type countedOrders struct {
	orders
	mu    sync.Mutex
	emits map[string]int
}

func (o *countedOrders) Run(ctx context.Context, em source.Emitter) error {
	return o.orders.Run(ctx, emitterFunc(func(ctx context.Context, ts ...*task.Task) error {
		o.mu.Lock()
		for _, t := range ts {
			o.emits[t.Key]++
		}
		o.mu.Unlock()
		return em.Emit(ctx, ts...)
	}))
}

func (o *countedOrders) emitted(k string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.emits[k]
}

type emitterFunc func(ctx context.Context, ts ...*task.Task) error

func (f emitterFunc) Emit(ctx context.Context, ts ...*task.Task) error { return f(ctx, ts...) }

// TestClusterChurnTellsEachTaskOnce (PLBA_TEST_CLUSTER=1): two hosts on a
// three-node cluster work keyed orders that succeed, succeed after retries,
// or are refused for good, while the cluster churns: every stream and
// consumer leader steps down again and again, or each node is restarted in
// turn. Every order is told once with its outcome, each refused one has one
// dead letter; re-driven during the churn, each is told once more,
// succeeded; emitted again, every order is finished at once, run by no
// handler. A source may be told an outcome more than once (a settlement
// whose ack or term was lost: the redelivery finds the task finished and
// tells it again), always the same one.
//
// It found that after a consumer leader step-down the server can deliver
// a message again while its previous delivery still runs, within its
// AckWait (seen: deliveries 3 and 4 of a retried task 14 ms apart, on
// two hosts): both ran and both settled and told, so that orders were
// told dead_lettered and succeeded (with PLBA_TEST_CHURN_ALL_RETRY=1,
// every order failing its first two attempts, and
// PLBA_TEST_CHURN_REFUSE_LATE=1, attempt 4 and later refused for good,
// in most runs). Now a settlement claims its message first and one of
// the two loses (queue/jetstream claim.go: the hosts log how many lost),
// and a process holds back a delivery again of a message it holds and
// keeps a message stored long before in progress from its arrival
// (holding.go), which keeps the server from delivering it again at all
// in most runs. A handler may still run twice (at least once): the
// check that no order runs after it was told succeeded can fail. On a
// loaded machine the rolling restart can also leave the cluster without
// answers for longer than the waits here. PLBA_TEST_CHURN_LOG sets the
// hosts' log level (error).
func TestClusterChurnTellsEachTaskOnce(t *testing.T) {
	// A probe, not a regression test: it runs for minutes and fails now
	// and then (see the comment above).
	if os.Getenv("PLBA_TEST_CLUSTER") == "" || os.Getenv("PLBA_TEST_CHURN") == "" {
		t.Skip("set PLBA_TEST_CLUSTER=1 and PLBA_TEST_CHURN=1 to churn a three-node cluster")
	}
	for _, mode := range []string{"step-downs", "rolling restart"} {
		t.Run(mode, func(t *testing.T) { churn(t, mode) })
	}
}

func churn(t *testing.T, mode string) {
	c := startChurnCluster(t)
	urls := []string{c.url(0), c.url(1), c.url(2)}
	const id = "CH"
	rec := &told{outcomes: map[string][]task.Outcome{}, reasons: map[string][]string{}, handled: map[string]int{}}
	var redriven atomic.Bool
	var (
		amu      sync.Mutex
		attempts = map[string][]int{}
	)
	retryKey := func(k string) bool {
		return os.Getenv("PLBA_TEST_CHURN_ALL_RETRY") != "" || len(k)%2 == 0 && strings.HasSuffix(k, "3")
	}
	emit := make(chan []string, 64)
	src := &countedOrders{orders: orders{emit: emit, rec: rec}, emits: map[string]int{}}
	start := func(host string, first int, in chan []string) (*fxtest.App, queue.Backend) {
		order := append(append([]string{}, urls[first:]...), urls[:first]...)
		sets := []string{"queue.backend=jetstream", "queue.jetstream.url=" + strings.Join(order, ","),
			"queue.jetstream.replicas=3", "queue.jetstream.stream_prefix=" + id, "queue.jetstream.ack_wait=3s",
			"queue.jetstream.duplicate_window=10m",
			"sources.lease.ttl=3s", "sources.lease.holder=" + host,
			"workers.orders.concurrency=8", "workers.orders.max_attempts=8",
			"workers.orders.backoff.initial=100ms", "workers.orders.backoff.max=500ms"}
		if lv := os.Getenv("PLBA_TEST_CHURN_LOG"); lv != "" { // the hosts' log level (error when unset)
			sets = append(sets, "log.level="+lv)
		}
		cfg := load(t, sets...)
		var b queue.Backend
		app := fxtest.New(t, platform.Module(cfg, platform.Info{}),
			fx.Provide(source.AsSource(func() source.Source {
				if in == emit {
					return src
				}
				return &orders{emit: in, rec: rec}
			})),
			worker.SupplyRoute(task.Route{Kind: "order", Queue: "orders", Handler: task.HandlerFunc(func(_ context.Context, tk *task.Task) error {
				time.Sleep(5 * time.Millisecond)
				rec.mu.Lock()
				rec.handled[tk.Key]++
				if o := rec.outcomes[tk.Key]; len(o) > 0 && o[len(o)-1] == task.Succeeded {
					rec.ranAgain = append(rec.ranAgain, fmt.Sprintf("%s (task %s) on %s at attempt %d, after it was told succeeded at %s", tk.Key, tk.ID, host, tk.Attempt, time.Now().Format("15:04:05.000")))
				}
				if rec.again {
					rec.ranAgain = append(rec.ranAgain, fmt.Sprintf("%s (attempt %d)", tk.Key, tk.Attempt))
				}
				rec.mu.Unlock()
				amu.Lock()
				attempts[tk.Key] = append(attempts[tk.Key], tk.Attempt)
				amu.Unlock()
				if deadKey(tk.Key) && !redriven.Load() {
					return task.Permanentf("order %s refused", tk.Key)
				}
				if os.Getenv("PLBA_TEST_CHURN_REFUSE_LATE") != "" && tk.Attempt >= 4 && !redriven.Load() {
					return task.Permanentf("order %s refused at attempt %d", tk.Key, tk.Attempt)
				}
				if retryKey(tk.Key) && tk.Attempt < 3 {
					return fmt.Errorf("order %s: try again", tk.Key)
				}
				return nil
			})}),
			fx.Populate(&b))
		app.RequireStart()
		return app, b
	}
	appA, backA := start("host-a", 0, emit)
	appB, backB := start("host-b", 1, make(chan []string))
	t.Cleanup(func() {
		// Settlements a claim lost to another delivery of the same
		// message (the server delivered it twice at once).
		lost := func(b queue.Backend) uint64 {
			if js, ok := b.(*jetstream.Backend); ok {
				return js.Status().ClaimsLost
			}
			return 0
		}
		t.Logf("claims lost: host-a %d, host-b %d", lost(backA), lost(backB))
	})
	t.Cleanup(func() {
		for _, app := range []*fxtest.App{appB, appA} {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			err := app.Stop(ctx)
			cancel()
			t.Logf("a host stopped: %v", err)
		}
	})

	// The churn, until stopped.
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1))
	require.NoError(t, err)
	defer nc.Close()
	stopChurn := make(chan struct{})
	churned := make(chan int)
	go func() {
		rounds := 0
		defer func() { churned <- rounds }()
		for {
			select {
			case <-stopChurn:
				return
			case <-time.After(time.Duration(300+rand.IntN(700)) * time.Millisecond):
			}
			if mode == "step-downs" {
				if stepDownAll(nc) > 0 {
					rounds++
				}
				continue
			}
			c.restart(rounds % 3)
			rounds++
		}
	}()
	stop := func() int {
		close(stopChurn)
		return <-churned
	}

	const total = 400
	keys := make([]string, total)
	for i := range keys {
		keys[i] = fmt.Sprintf("order-%d", i)
	}
	go func() {
		for i := 0; i < total; i += 10 {
			emit <- keys[i:min(i+10, total)]
			time.Sleep(50 * time.Millisecond)
		}
	}()
	waitTold := func(what string, n func(k string) int) {
		deadline := time.Now().Add(120 * time.Second)
		for {
			rec.mu.Lock()
			var missing []string
			for _, k := range keys {
				if len(rec.outcomes[k]) < n(k) {
					missing = append(missing, fmt.Sprintf("%s (handled %d, told %v)", k, rec.handled[k], rec.outcomes[k]))
				}
			}
			rec.mu.Unlock()
			if len(missing) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d orders not told: %v; emit errors %q", what, len(missing), missing, rec.emitErrs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitTold("first run", func(string) int { return 1 })
	if os.Getenv("PLBA_TEST_CHURN_REFUSE_LATE") != "" {
		time.Sleep(5 * time.Second) // the tells of late duplicates
		rec.mu.Lock()
		for _, k := range keys {
			o := rec.outcomes[k]
			for i := 1; i < len(o); i++ {
				if o[i] != o[0] {
					t.Errorf("order %s told %v %q", k, o, rec.reasons[k])
				}
			}
		}
		rec.mu.Unlock()
		return // the later phases expect no late refusals
	}
	rec.mu.Lock()
	ranAfter := append([]string(nil), rec.ranAgain...)
	rec.mu.Unlock()
	require.Empty(t, ranAfter, "orders run after they were told succeeded")

	// check says each order was told the outcomes want, in order, each
	// at least once, and told no more often than it was emitted (an emit
	// that failed may have stored its tasks, and the source emits again:
	// that is told again) plus extra (a re-driven task's outcome).
	check := func(extra int, want func(k string) []task.Outcome) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, k := range keys {
			amu.Lock()
			as := append([]int(nil), attempts[k]...)
			amu.Unlock()
			got := rec.outcomes[k]
			var runs []task.Outcome
			for i, o := range got {
				if i == 0 || got[i-1] != o {
					runs = append(runs, o)
				}
			}
			n := src.emitted(k)
			if deadKey(k) {
				n += extra
			}
			require.Equal(t, want(k), runs, "order %s told %v %q, ran at attempts %v", k, got, rec.reasons[k], as)
			if len(got) > n {
				// Told at least once: again when a settlement lost its
				// ack or term and the redelivery finds the task finished.
				t.Logf("order %s told %v, emitted %d times, ran at attempts %v", k, got, src.emitted(k), as)
			}
		}
	}
	check(0, func(k string) []task.Outcome {
		if deadKey(k) {
			return []task.Outcome{task.DeadLettered}
		}
		return []task.Outcome{task.Succeeded}
	})
	dead := 0
	for _, k := range keys {
		if deadKey(k) {
			dead++
		}
	}
	listDead := func() map[string]int {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		dl, err := backA.ListDead(ctx, "orders", 0)
		if err != nil {
			return nil
		}
		byKey := map[string]int{}
		for _, d := range dl {
			byKey[d.Task.Key]++
		}
		return byKey
	}
	var fromA map[string]int
	require.Eventually(t, func() bool { fromA = listDead(); return len(fromA) == dead }, 60*time.Second, 200*time.Millisecond)
	for k, n := range fromA {
		require.True(t, deadKey(k), "order %s dead-lettered", k)
		require.Equal(t, 1, n, "order %s dead-lettered %d times", k, n)
	}

	// Re-driven during the churn: each told once more, succeeded.
	redriven.Store(true)
	moved := 0
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		n, err := backA.Redrive(ctx, "orders")
		moved += n
		if err != nil {
			t.Logf("redrive: %d moved: %v", n, err)
		}
		return err == nil && len(listDead()) == 0
	}, 90*time.Second, 500*time.Millisecond, "every dead letter re-driven")
	// A dead letter whose copy was queued but whose delete failed is
	// reported, not counted: the outcomes told below are the check.
	t.Logf("re-driven: %d counted of %d", moved, dead)
	waitTold("re-driven", func(k string) int {
		if deadKey(k) {
			return 2
		}
		return 1
	})
	rounds := stop()
	t.Logf("%s: %d rounds", mode, rounds)
	c.waitCurrent()
	finished := func(k string) []task.Outcome {
		if deadKey(k) {
			return []task.Outcome{task.DeadLettered, task.Succeeded}
		}
		return []task.Outcome{task.Succeeded}
	}
	check(1, finished)

	// Emitted again: each finished at once with its outcome, none run.
	rec.mu.Lock()
	rec.again = true
	rec.mu.Unlock()
	emit <- keys
	waitTold("emitted again", func(k string) int { return len(finished(k)) + 1 })
	rec.mu.Lock()
	ranAgain := append([]string(nil), rec.ranAgain...)
	rec.mu.Unlock()
	require.Empty(t, ranAgain, "orders run again after they were emitted again")
	check(1, func(k string) []task.Outcome { return finished(k) })
}
