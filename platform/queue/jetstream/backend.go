package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// Sentinel errors of this package (see also queue's errors).
var (
	// ErrNotStarted is returned by calls made before Start succeeded.
	ErrNotStarted = errors.New("jetstream: backend not started")
	// ErrForeignDelivery is returned when a delivery made by another backend
	// is settled here.
	ErrForeignDelivery = errors.New("jetstream: delivery not made by this backend")
	// ErrUnreachable is returned by Check when the connection or JetStream
	// does not answer.
	ErrUnreachable = errors.New("jetstream: unreachable")
)

// Params are the inputs of New.
type Params struct {
	// Config is the section "queue.jetstream".
	Config Config
	// Logger receives connection events and anomalies; nil is a no-op.
	Logger *zap.Logger
	// Server, when set, is an embedded server started by the caller: the
	// backend connects to it in process and does not shut it down. When
	// nil and Config.Mode is "embedded", Start starts one from
	// Config.Embedded and Close shuts it down.
	Server *embedded.Server
	// NATSOptions are appended to the connection options built from Config.
	NATSOptions []nats.Option
}

// Backend is the JetStream queue backend. Create it with New (or Open),
// then Start it; it implements queue.Backend.
type Backend struct {
	cfg   Config
	log   *zap.Logger
	names names
	p     Params

	startOnce sync.Once
	startErr  error
	started   atomic.Bool

	// copyLookups counts the dead-letter lookups of deliveries after the
	// first (redeliveredCopy).
	copyLookups atomic.Int64

	srv     *embedded.Server // owned when ownsSrv
	ownsSrv bool
	// srvSince is when the owned embedded server started (zero for any
	// other server): messages stored before it were stored by one that
	// may have died with its process, forgetting their last deliveries
	// (see deliver).
	srvSince time.Time
	nc       *nats.Conn
	js       jetstream.JetStream
	// faultJS, set by tests before Start, wraps js with a fault (a slow
	// publish); nil otherwise.
	faultJS func(jetstream.JetStream) jetstream.JetStream
	done    jetstream.Stream // finished keys (done.go)
	// claimWin is the duplicate window of the finished-key stream, as the
	// server has it (claim.go): nanoseconds, 0 before it was set up.
	claimWin atomic.Int64
	dead     jetstream.Stream // dead letters (dead.go)

	deadDiscarded atomic.Uint64 // dead letters discarded to make room
	// discardMu guards discardedBy: the dead letters this process
	// discarded to make room, by queue (dead.go, discardOldestDead).
	discardMu   sync.Mutex
	discardedBy map[string]int64
	claimsLost  atomic.Uint64       // settlements another delivery's claim beat (claim.go)
	metricReg   metric.Registration // registerMetrics' callback

	closing   chan struct{} // closed when Close begins
	closeOnce sync.Once
	closeErr  error
	connDone  atomic.Bool // connection closed by Close

	qmu    sync.Mutex
	queues map[string]*queueState

	schedules bool               // the server supports message schedules (2.12+)
	multiGet  bool               // the server answers batched direct gets (2.11+)
	termWhy   bool               // the server reads a reason after +TERM (2.11+; see term)
	wmu       sync.Mutex         // orders puller starts against Close
	wg        sync.WaitGroup     // pullers and the buffer keeper
	pullCtx   context.Context    // the pullers' requests; ends at Close
	stopPull  context.CancelFunc // ends pullCtx

	pubs   pending       // Enqueue's messages waiting for their publish ack
	window chan struct{} // one token per async publish in flight (window.go)

	imu       sync.Mutex
	inflight  map[*receipt]struct{}
	lwg       sync.WaitGroup // the lease keeper
	leaseStop chan struct{}  // closed when the lease keeper stops
	settled   chan struct{}  // signalled (non-blocking) on every settlement

	advMu   sync.Mutex
	advCons jetstream.Consumer       // of the advisory stream (advisory.go)
	advCC   jetstream.ConsumeContext // reads it, once WatchDead or Lease was called

	stores restorer // sets lost streams up again (restore.go)

	watchMu    sync.Mutex
	watchFn    func(queue.DeadLetter) // WatchDead's function
	finishedFn func(*task.Task)       // WatchFinished's function

	smu         sync.Mutex
	reconnects  uint64
	disconnects uint64
	lastErr     string
	lastErrAt   time.Time
}

var _ queue.Backend = (*Backend)(nil)

// New validates p and returns a backend that is not yet connected; call
// Start. It does no I/O.
func New(p Params) (*Backend, error) {
	if err := p.Config.Validate(); err != nil {
		return nil, err
	}
	cfg := p.Config.WithDefaults()
	if p.Logger == nil {
		p.Logger = zap.NewNop()
	}
	pullCtx, stopPull := context.WithCancel(context.Background())
	return &Backend{
		pullCtx:   pullCtx,
		stopPull:  stopPull,
		cfg:       cfg,
		log:       p.Logger,
		p:         p,
		names:     names{prefix: cfg.StreamPrefix, consumer: cfg.Consumer},
		closing:   make(chan struct{}),
		queues:    make(map[string]*queueState),
		inflight:  make(map[*receipt]struct{}),
		settled:   make(chan struct{}, 1),
		leaseStop: make(chan struct{}),
		window:    make(chan struct{}, cfg.MaxAsyncPending),
		stores:    newRestorer(),
	}, nil
}

// Open is New followed by Start.
func Open(ctx context.Context, p Params) (*Backend, error) {
	b, err := New(p)
	if err != nil {
		return nil, err
	}
	if err := b.Start(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// Config returns the effective configuration (defaults applied).
func (b *Backend) Config() Config { return b.cfg }

// Start starts the embedded server (mode "embedded" without
// Params.Server), connects and creates the dead-letter stream (and
// starts reading max-deliveries advisories when WatchDead was called). It is idempotent; after a failure the
// backend is unusable (make a new one).
func (b *Backend) Start(ctx context.Context) error {
	b.startOnce.Do(func() {
		b.startErr = b.start(ctx)
		if b.startErr != nil {
			b.teardown(context.Background())
			return
		}
		b.started.Store(true)
	})
	return b.startErr
}

func (b *Backend) start(ctx context.Context) error {
	opts, err := b.natsOptions()
	if err != nil {
		return err
	}
	url := ""
	switch {
	case b.p.Server != nil:
		b.srv = b.p.Server
		opts = append(opts, b.srv.ClientOptions()...)
	case b.cfg.Mode == ModeEmbedded:
		srv, err := embedded.Start(ctx, b.cfg.Embedded, b.log)
		if err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		b.srv, b.ownsSrv, b.srvSince = srv, true, time.Now()
		opts = append(opts, srv.ClientOptions()...)
	default:
		url = strings.Join(b.cfg.servers(), ",")
	}
	opts = append(opts, b.p.NATSOptions...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("jetstream: connect %s: %w", redactURLs(url), redactedErr{err})
	}
	b.nc = nc
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(b.cfg.MaxAsyncPending),
		jetstream.WithPublishAsyncTimeout(b.cfg.PublishTimeout),
		jetstream.WithPublishAsyncAckHandler(b.onPubAck),
		jetstream.WithPublishAsyncErrHandler(b.onPubErr),
	)
	if err != nil {
		return fmt.Errorf("jetstream: new context: %w", err)
	}
	if b.faultJS != nil {
		js = b.faultJS(js)
	}
	b.js = js
	if err := b.ensureDeadStream(ctx); err != nil {
		return err
	}
	if err := b.ensureDoneStream(ctx); err != nil {
		return err
	}
	if err := b.ensureAdvisoryStream(ctx); err != nil {
		return err
	}
	if err := b.agreeOverrides(ctx); err != nil {
		return err
	}
	b.schedules = serverAtLeast(nc.ConnectedServerVersion(), 2, 12)
	b.multiGet = serverAtLeast(nc.ConnectedServerVersion(), 2, 11)
	b.termWhy = serverAtLeast(nc.ConnectedServerVersion(), 2, 11)
	if !b.schedules {
		b.log.Warn("jetstream: server without message schedules (before 2.12): NotBefore tasks wait in the queue with delayed negative acks",
			zap.String("server_version", nc.ConnectedServerVersion()))
	}
	if err := b.registerMetrics(); err != nil {
		return err
	}
	b.wg.Add(1)
	go b.keepBuffers()
	b.lwg.Add(1)
	go b.keepLeases()
	b.watchMu.Lock()
	watched := b.watchFn != nil
	b.watchMu.Unlock()
	if watched {
		if err := b.startAdvisories(); err != nil {
			return err
		}
	}
	b.wg.Add(1)
	go b.keepStores()
	b.log.Info("jetstream backend started", zap.String("server", b.serverURL(nc)),
		zap.String("mode", b.cfg.Mode), zap.String("stream_prefix", b.cfg.StreamPrefix))
	return nil
}

// pokePullers makes every puller replace its pull request at once.
func (b *Backend) pokePullers() {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	for _, q := range b.queues {
		q.repull()
	}
}

func (b *Backend) isClosing() bool {
	select {
	case <-b.closing:
		return true
	default:
		return false
	}
}

// usable returns ErrNotStarted or ErrClosed when calls must not proceed.
func (b *Backend) usable() error {
	if b.isClosing() {
		return queue.ErrClosed
	}
	if !b.started.Load() {
		return ErrNotStarted
	}
	return nil
}
