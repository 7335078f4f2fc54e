package jetstream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Acked tasks a crash left behind. The server records a consumer's ack
// and then deletes the acked message from the work stream; a process
// killed (or a server stopped) between the two keeps the consumer's ack
// floor past a message the stream still stores. The server never
// delivers that message again and, for a work-queue stream, does not
// remove it at restart (nats-server checks for such orphans only on
// interest retention), so it would stay forever: counted as Delayed by
// Stats, holding its key in the duplicate table, taking space. Every
// message on the queue's subject at or below the ack floor was acked, so
// dropAcked deletes the messages of q's subject stored at or below the
// consumer's ack floor and returns how many it deleted.
func (b *Backend) dropAcked(ctx context.Context, q *queueState, s jetstream.Stream, c jetstream.Consumer) (int, error) {
	floor := c.CachedInfo().AckFloor.Stream
	n, err := ackedLeft(ctx, s, q.subject, floor, func(seq uint64) error {
		if err := s.DeleteMsg(ctx, seq); err != nil && !isMsgNotFound(err) {
			return fmt.Errorf("jetstream: delete acked message %d of stream %q: %w", seq, q.stream, err)
		}
		return nil
	})
	if n > 0 {
		b.log.Warn("jetstream: removed acked tasks a crash left in the work stream",
			zap.String("queue", q.queue), zap.Int("count", n), zap.Uint64("ack_floor", floor))
	}
	return n, err
}

// ackedLeft calls fn with the sequence of every message on subject that s
// stores at or below floor (none unless a crash left some: the first
// stored sequence is then at or below the floor) and returns how many.
func ackedLeft(ctx context.Context, s jetstream.Stream, subject string, floor uint64, fn func(seq uint64) error) (int, error) {
	st := s.CachedInfo().State
	if st.Msgs == 0 || st.FirstSeq > floor {
		return 0, nil
	}
	n := 0
	for seq := st.FirstSeq; seq <= floor; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("jetstream: read stream %q at %d: %w", s.CachedInfo().Config.Name, seq, err)
		}
		if m.Sequence > floor {
			break
		}
		if fn != nil {
			if err := fn(m.Sequence); err != nil {
				return n, err
			}
		}
		n++
		seq = m.Sequence + 1
	}
	return n, nil
}
