// Package auditstream keeps the admin audit in a JetStream stream, so
// that it survives restarts: admin.AuditStore on JetStream. The platform
// provides it when the queue backend is JetStream; the admin server
// appends every entry and fills its ring from the stream at start. The
// hosts of a cluster share the stream and must agree on its limits (see
// Store.Start).
package auditstream

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/plba/plba/internal/jsapi"
	"github.com/plba/plba/internal/sleep"
	"github.com/plba/plba/platform/admin"
	queuejs "github.com/plba/plba/platform/queue/jetstream"
)

// Store is the audit stream.
type Store struct {
	js       func() jetstream.JetStream
	cfg      admin.AuditConfig
	replicas int
	subject  string
	origin   string // this store's own part of every message id
	log      *zap.Logger
	started  atomic.Bool // Start created or found the stream
	owns     func() bool // see OwnedWhen
}

var _ admin.AuditStore = (*Store)(nil)

// New returns the store for the stream cfg names (defaults applied), on
// the JetStream context js returns once the backend started (js is
// called at Start, not before). replicas is the stream's replication
// factor (the queue streams'). log receives the count of the entries
// Recent skipped (nil: none). New does no I/O.
func New(js func() jetstream.JetStream, cfg admin.AuditConfig, replicas int, log *zap.Logger) *Store {
	cfg = cfg.WithDefaults()
	if replicas < 1 {
		replicas = 1
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Store{js: js, cfg: cfg, replicas: replicas, subject: cfg.Stream + ".entries", origin: rand.Text()[:13], log: log}
}

// OwnedWhen has Start apply the configuration to the stream it finds
// when owns reports true (called at Start: the host owns its embedded
// server and is the only host on it, jetstream.Backend.OwnsServer), as
// the queue backend does its streams. Without it, or when owns reports
// false, Start compares the stream with the configuration (see Start).
// It returns s.
func (s *Store) OwnedWhen(owns func() bool) *Store {
	s.owns = owns
	return s
}

// streamConfig is the configuration of the audit stream.
func (s *Store) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        s.cfg.Stream,
		Description: "plba admin audit: every state-changing call on the admin server",
		Subjects:    []string{s.subject},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      s.cfg.MaxAge,
		MaxMsgs:     s.cfg.MaxMsgs,
		Storage:     jetstream.FileStorage,
		Replicas:    s.replicas,
		Duplicates:  time.Minute,
	}
}

// Start creates the stream, or sets it up as it finds it. The hosts of
// a cluster share it, and every one must have the same limits: a host
// that owns its server (OwnedWhen) updates the stream to its
// configuration; any other creates it, and compares one that exists with
// another configuration, refusing to start on a difference in its
// admin.audit.max_msgs, admin.audit.max_age or queue.jetstream.replicas
// (queuejs.SettingDiffers, a configuration problem naming the key:
// exit 2), where the last host to start applied its own under the others
// (a lower max_msgs had the other hosts' entries discarded sooner than
// they say, one replica took the audit down to one copy). Settings it
// does not compare are updated to its own.
func (s *Store) Start(ctx context.Context) error {
	js := s.js()
	if js == nil {
		return errors.New("auditstream: the JetStream backend has not started")
	}
	want := s.streamConfig()
	if s.owns == nil || !s.owns() {
		st, err := jsapi.Retry(ctx, func(ctx context.Context) (jetstream.Stream, error) {
			st, err := js.CreateStream(ctx, want)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return nil, nil // it exists, made otherwise: compared below
			}
			return st, err
		})
		if err != nil {
			return fmt.Errorf("auditstream: create stream %q: %w", s.cfg.Stream, err)
		}
		if st == nil {
			if err := s.agree(ctx, js, want); err != nil {
				return err
			}
		}
	}
	_, err := jsapi.Retry(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, want)
	})
	if err != nil {
		return fmt.Errorf("auditstream: create stream %q: %w", s.cfg.Stream, err)
	}
	s.started.Store(true)
	return nil
}

// agree compares the stream on the server with want: its replicas,
// maximum messages and maximum age.
func (s *Store) agree(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	st, err := jsapi.Retry(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, want.Name) })
	if err != nil {
		return fmt.Errorf("auditstream: stream %q: %w", want.Name, err)
	}
	have := st.CachedInfo().Config
	what := fmt.Sprintf("the audit stream %q", want.Name)
	edit := "nats stream edit " + want.Name
	switch {
	case have.Replicas != want.Replicas:
		return queuejs.SettingDiffers("queue.jetstream.replicas", want.Replicas, have.Replicas, what, edit)
	case have.MaxMsgs != want.MaxMsgs:
		return queuejs.SettingDiffers("admin.audit.max_msgs", want.MaxMsgs, have.MaxMsgs, what, edit)
	case have.MaxAge != want.MaxAge:
		return queuejs.SettingDiffers("admin.audit.max_age", want.MaxAge, have.MaxAge, what, edit)
	}
	return nil
}

// notFoundGrace is how long stream retries a "stream not found" once
// Start created or found the stream: on a cluster, a server answers so
// for a moment after the stream was created, until the stream's
// assignment reached it (seen with three hosts starting at once).
const notFoundGrace = 10 * time.Second

// stream looks the stream up (one request, whose answer carries its
// state: CachedInfo), retrying what jsapi.Retry retries and, after
// Start, "not found" for up to notFoundGrace.
func (s *Store) stream(ctx context.Context) (jetstream.Stream, error) {
	js := s.js()
	until := time.Now().Add(notFoundGrace)
	for {
		st, err := jsapi.Retry(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, s.cfg.Stream) })
		if err == nil || !errors.Is(err, jetstream.ErrStreamNotFound) || !s.started.Load() || time.Now().After(until) {
			return st, err
		}
		if !sleep.For(ctx.Done(), 100*time.Millisecond) {
			return nil, err
		}
	}
}

// Append publishes e and waits for the stream's acknowledgement. Its
// message id is the entry's id after the store's own random part: an
// append retried after a lost ack is stored once, and the entry of
// another host on the same stream (the hosts of a cluster share it) with
// the same id (a time in nanoseconds) is stored beside it, not taken for
// a retry and dropped.
func (s *Store) Append(ctx context.Context, e admin.AuditEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("auditstream: encode entry %d: %w", e.ID, err)
	}
	if _, err := s.js().Publish(ctx, s.subject, b, jetstream.WithMsgID(s.origin+"-"+strconv.FormatInt(e.ID, 10))); err != nil {
		return fmt.Errorf("auditstream: append to %q: %w", s.cfg.Stream, err)
	}
	return nil
}

// fetchWait bounds one fetch of Recent.
const fetchWait = 2 * time.Second

// Recent returns at most n of the newest entries, oldest first. An entry
// that does not decode is skipped; when any was, one warning counts them
// (the history has holes).
func (s *Store) Recent(ctx context.Context, n int) ([]admin.AuditEntry, error) {
	st, err := s.stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("auditstream: stream %q: %w", s.cfg.Stream, err)
	}
	// The state the lookup returned: asking again is one more request
	// that a cluster answers from the stream's leader only, and one made
	// while that leader is being elected (a stream just created, or a
	// node lost) gets no answer and waited out the whole start.
	state := st.CachedInfo().State
	if state.Msgs == 0 || n <= 0 {
		return nil, nil
	}
	start := state.FirstSeq
	if state.LastSeq >= uint64(n) && state.LastSeq-uint64(n)+1 > start {
		start = state.LastSeq - uint64(n) + 1
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start,
	})
	if err != nil {
		return nil, fmt.Errorf("auditstream: stream %q: consumer: %w", s.cfg.Stream, err)
	}
	out := make([]admin.AuditEntry, 0, min(n, int(state.Msgs)))
	skipped, firstSkipped := 0, uint64(0)
	for {
		batch, err := c.Fetch(min(n, 256), jetstream.FetchMaxWait(fetchWait))
		if err != nil {
			return nil, fmt.Errorf("auditstream: stream %q: fetch: %w", s.cfg.Stream, err)
		}
		got, last := 0, uint64(0)
		for m := range batch.Messages() {
			got++
			if md, err := m.Metadata(); err == nil {
				last = md.Sequence.Stream
			}
			var e admin.AuditEntry
			if json.Unmarshal(m.Data(), &e) != nil {
				if skipped++; skipped == 1 {
					firstSkipped = last
				}
				continue
			}
			out = append(out, e)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("auditstream: stream %q: fetch: %w", s.cfg.Stream, err)
		}
		if got == 0 || last >= state.LastSeq {
			break
		}
	}
	if skipped > 0 {
		s.log.Warn("auditstream: entries of the stream that do not decode were skipped: the audit history read has holes",
			zap.String("stream", s.cfg.Stream), zap.Int("skipped", skipped), zap.Uint64("first_seq", firstSkipped))
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}
