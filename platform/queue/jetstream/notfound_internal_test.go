package jetstream

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/queue"
	"github.com/plba/plba/platform/queue/jetstream/embedded"
	"github.com/plba/plba/platform/task"
)

// onBothServers runs test as the parallel subtests "embedded" (the
// nats-server this module builds in, its store in a temporary directory)
// and "external" (PLBA_TEST_NATS_URL's, an older server on the test
// machines; skipped when unset), with cfg completed for the subtest's
// server: on the external one under a stream prefix of its own, whose
// streams are deleted when the test ends.
func onBothServers(t *testing.T, cfg Config, test func(t *testing.T, cfg Config)) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		c := cfg
		c.Mode, c.Embedded = ModeEmbedded, embedded.Config{StoreDir: t.TempDir()}
		test(t, c)
	})
	t.Run("external", func(t *testing.T) {
		url := os.Getenv("PLBA_TEST_NATS_URL")
		if url == "" {
			t.Skip("PLBA_TEST_NATS_URL not set")
		}
		t.Parallel()
		c := cfg
		c.URL, c.StreamPrefix = url, uniquePrefix(t)
		// Registered before the test's own cleanups, so it runs after
		// them, once its backends are closed, on a connection of its own.
		t.Cleanup(func() { deleteStreams(t, url, c.StreamPrefix) })
		test(t, c)
	})
}

// TestMessageNotFoundIsNothingElse: isMsgNotFound is true for the
// server's answers that a message is not stored (a get, a get of the
// next message, a last-for-subject get, a delete of a message deleted
// before), on a file and a memory store, with and without direct gets,
// and false for what the same requests answer on a stream deleted
// meanwhile, and for a consumer that is not found. It took every API
// error whose description had "not found" in it (stream not found,
// 10059; consumer not found, 10014) for "no such message".
func TestMessageNotFoundIsNothingElse(t *testing.T) {
	t.Parallel()
	onBothServers(t, Config{AckWait: 5 * time.Second}, func(t *testing.T, cfg Config) {
		b := openTestBackend(t, cfg)
		ctx := t.Context()
		for _, storage := range []jetstream.StorageType{jetstream.FileStorage, jetstream.MemoryStorage} {
			for _, direct := range []bool{false, true} {
				name := b.cfg.StreamPrefix + "-NOTFOUND-" + storage.String() + map[bool]string{false: "-API", true: "-DIRECT"}[direct]
				subj := strings.ToLower(name)
				what := func(op string) string {
					return storage.String() + " store, direct gets " + map[bool]string{false: "off", true: "on"}[direct] + ": " + op
				}
				s, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj + ".>"}, Storage: storage, AllowDirect: direct})
				require.NoError(t, err)
				for range 2 {
					_, err := b.js.Publish(ctx, subj+".a", []byte("x"))
					require.NoError(t, err)
				}

				_, err = s.GetMsg(ctx, 9)
				require.True(t, isMsgNotFound(err), "%s: %v", what("get of a sequence never stored"), err)
				_, err = s.GetMsg(ctx, 3, jetstream.WithGetMsgSubject(">"))
				require.True(t, isMsgNotFound(err), "%s: %v", what("get of the next message after the last"), err)
				_, err = s.GetLastMsgForSubject(ctx, subj+".b")
				require.True(t, isMsgNotFound(err), "%s: %v", what("last message of a subject without any"), err)
				for seq := uint64(1); seq <= 2; seq++ { // the second is the stream's last
					require.NoError(t, s.DeleteMsg(ctx, seq))
					err = s.DeleteMsg(ctx, seq)
					require.True(t, isMsgNotFound(err), "%s: %v", what("delete of a message deleted before"), err)
				}
				_, err = s.Consumer(ctx, "none")
				require.Error(t, err)
				require.False(t, isMsgNotFound(err), "%s: %v", what("consumer not found"), err)

				require.NoError(t, b.js.DeleteStream(ctx, name))
				gctx, cancel := context.WithTimeout(ctx, time.Second) // a direct get may get no answer at all
				_, err = s.GetMsg(gctx, 1)
				cancel()
				require.Error(t, err)
				require.False(t, isMsgNotFound(err), "%s: %v", what("get on a deleted stream"), err)
				gctx, cancel = context.WithTimeout(ctx, time.Second)
				_, err = s.GetMsg(gctx, 1, jetstream.WithGetMsgSubject(">"))
				cancel()
				require.Error(t, err)
				require.False(t, isMsgNotFound(err), "%s: %v", what("get of the next message on a deleted stream"), err)
				gctx, cancel = context.WithTimeout(ctx, time.Second)
				_, err = s.GetLastMsgForSubject(gctx, subj+".a")
				cancel()
				require.Error(t, err)
				require.False(t, isMsgNotFound(err), "%s: %v", what("last message on a deleted stream"), err)
				err = s.DeleteMsg(ctx, 1)
				require.Error(t, err)
				require.False(t, isMsgNotFound(err), "%s: %v", what("delete on a deleted stream"), err)
			}
		}
	})
}

// deletingJS deletes the work stream named stream before the first
// message a lookup reads from it: the stream is deleted during the
// lookup (an operator, a server losing its store).
type deletingJS struct {
	jetstream.JetStream
	stream string
}

func (d *deletingJS) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	s, err := d.JetStream.Stream(ctx, name)
	if err != nil || name != d.stream {
		return s, err
	}
	return &deletingStream{Stream: s, js: d.JetStream}, nil
}

// deletingStream is a stream that is deleted before its first GetMsg is
// answered.
type deletingStream struct {
	jetstream.Stream
	js   jetstream.JetStream
	once sync.Once
	err  error
}

func (s *deletingStream) GetMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	s.once.Do(func() { s.err = s.js.DeleteStream(ctx, s.CachedInfo().Config.Name) })
	if s.err != nil {
		return nil, s.err
	}
	return s.Stream.GetMsg(ctx, seq, opts...)
}

// TestFindTasksOnAStreamDeletedMidwayFails: a lookup whose work stream
// is deleted while it reads it did not search the stream: FindTasks
// fails (a schedule's due time then stays unknown), rather than report
// the task absent. The server answers the reads "stream not found"
// (err_code 10059), which was taken for "no message" (isMsgNotFound): the
// lookup ended, searched, with nothing found. The stream reads without
// direct gets, as one with replicas does.
func TestFindTasksOnAStreamDeletedMidwayFails(t *testing.T) {
	t.Parallel()
	onBothServers(t, Config{AckWait: time.Minute}, func(t *testing.T, cfg Config) {
		b, err := New(Params{Config: cfg})
		require.NoError(t, err)
		const q = "deleted-midway"
		qn, err := b.names.forQueue(q)
		require.NoError(t, err)
		b.faultJS = func(js jetstream.JetStream) jetstream.JetStream { return &deletingJS{JetStream: js, stream: qn.stream} }
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = b.Close(ctx)
		})
		require.NoError(t, b.Start(t.Context()))
		ctx := t.Context()
		require.NoError(t, b.Enqueue(ctx, &task.Task{Kind: "k", Queue: q, Key: "due-at-nine", Payload: []byte("{}")}))
		// As a stream with replicas: no direct gets (the reads are the
		// API's, which answers for a stream it does not have).
		info, err := b.js.Stream(ctx, qn.stream)
		require.NoError(t, err)
		sc := info.CachedInfo().Config
		sc.AllowDirect = false
		_, err = b.js.UpdateStream(ctx, sc)
		require.NoError(t, err)

		s, err := b.FindTasks(ctx, q, queue.TaskLookup{Key: "due-at-nine"})
		require.Error(t, err, "the work stream was not searched: found %+v", s.Found)
		require.ErrorIs(t, err, jetstream.ErrStreamNotFound)
		require.Empty(t, s.Found)
	})
}
