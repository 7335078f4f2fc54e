//go:build fastbatchprobe

package fastbatchprobe

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// outcome is what a FastPublisher reported for one batch.
type outcome struct {
	failedAt  int           // index of the first Add/Commit that returned an error, -1 if none
	err       error         // that error
	took      time.Duration // how long that call took
	ackSeq    uint64        // the highest AckSequence a successful Add reported
	commit    *jetstreamext.BatchAck
	asyncErrs []string // what the error handler received
}

// fastBatch publishes msgs as one fast batch (gap mode "fail"), the last
// through CommitMsg, and records what the client saw.
func fastBatch(t *testing.T, js jetstream.JetStream, msgs []*nats.Msg, ackTimeout time.Duration) outcome {
	t.Helper()
	var mu sync.Mutex
	o := outcome{failedAt: -1}
	fp, err := jetstreamext.NewFastPublisher(js,
		jetstreamext.FastPublishFlowControl{Flow: 100, MaxOutstandingAcks: 2, AckTimeout: ackTimeout},
		jetstreamext.WithFastPublisherErrorHandler(func(err error) {
			mu.Lock()
			o.asyncErrs = append(o.asyncErrs, err.Error())
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		start := time.Now()
		if i < len(msgs)-1 {
			var ack *jetstreamext.FastPubAck
			ack, err = fp.AddMsg(m)
			if err == nil {
				o.ackSeq = ack.AckSequence
			}
		} else {
			o.commit, err = fp.CommitMsg(context.Background(), m)
		}
		if err != nil {
			o.failedAt, o.err, o.took = i, err, time.Since(start)
			break
		}
	}
	time.Sleep(100 * time.Millisecond) // let late control messages arrive
	mu.Lock()
	defer mu.Unlock()
	return o
}

func msgCount(t *testing.T, st jetstream.Stream) (msgs, last uint64) {
	t.Helper()
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs, info.State.LastSeq
}

func batchOf(subj, run string, from, to int, payload []byte) []*nats.Msg {
	var out []*nats.Msg
	for i := from; i < to; i++ {
		out = append(out, taskMsg(subj, run, i, payload))
	}
	return out
}

func logOutcome(t *testing.T, o outcome, st jetstream.Stream) {
	t.Helper()
	n, last := msgCount(t, st)
	var commit string
	if o.commit != nil {
		commit = "seq " + uintStr(o.commit.Sequence) + " count " + uintStr(o.commit.BatchSize)
	}
	t.Logf("failedAt=%d err=%v took=%v lastAckSeq=%d commit=[%s] async=%q | stream msgs=%d lastSeq=%d",
		o.failedAt, o.err, o.took.Round(time.Millisecond), o.ackSeq, commit, o.asyncErrs, n, last)
}

func uintStr(v uint64) string { return strconv.FormatUint(v, 10) }

// TestSemantics records, on a 2.15.2 server, what a fast batch in gap mode
// "fail" reports in the cases Enqueue must tell apart.
func TestSemantics(t *testing.T) {
	s := startServer(t)
	nc := connect(t, s, "tcp")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	payload := make([]byte, 128)

	t.Run("duplicates-inside-batch", func(t *testing.T) {
		st := workStream(t, js, "DUP", "plba.q.dup", nil)
		for _, m := range batchOf("plba.q.dup", "d", 0, 100, payload) {
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		// Keys 50..149: the first 50 were stored before, one key twice.
		msgs := batchOf("plba.q.dup", "d", 50, 150, payload)
		msgs = append(msgs[:60], append([]*nats.Msg{taskMsg("plba.q.dup", "d", 120, payload)}, msgs[60:]...)...)
		o := fastBatch(t, js, msgs, 5*time.Second)
		logOutcome(t, o, st)
		if n, _ := msgCount(t, st); o.err != nil || n != 150 || o.commit.BatchSize != uint64(len(msgs)) {
			t.Fatalf("duplicates: want no error, 150 stored, count %d", len(msgs))
		}
	})

	t.Run("duplicate-first-and-last", func(t *testing.T) {
		st := workStream(t, js, "DUP2", "plba.q.dup2", nil)
		if _, err := js.PublishMsg(ctx, taskMsg("plba.q.dup2", "e", 0, payload)); err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, taskMsg("plba.q.dup2", "e", 9, payload)); err != nil {
			t.Fatal(err)
		}
		o := fastBatch(t, js, batchOf("plba.q.dup2", "e", 0, 10, payload), 5*time.Second)
		logOutcome(t, o, st)
	})

	t.Run("stream-full-midway", func(t *testing.T) {
		st := workStream(t, js, "FULL", "plba.q.full", func(c *jetstream.StreamConfig) {
			c.MaxMsgs, c.Discard = 1000, jetstream.DiscardNew
		})
		o := fastBatch(t, js, batchOf("plba.q.full", "f", 0, 1500, payload), 3*time.Second)
		logOutcome(t, o, st)
		// Room again: what does the same batch do now (1000 duplicates,
		// then 500 new ones, of which the stream takes none: it is full)?
		o = fastBatch(t, js, batchOf("plba.q.full", "f", 0, 1500, payload), 3*time.Second)
		logOutcome(t, o, st)
	})

	t.Run("stream-full-at-first", func(t *testing.T) {
		st := workStream(t, js, "FULL1", "plba.q.full1", func(c *jetstream.StreamConfig) {
			c.MaxMsgs, c.Discard = 10, jetstream.DiscardNew
		})
		for _, m := range batchOf("plba.q.full1", "g", 0, 10, payload) {
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		o := fastBatch(t, js, batchOf("plba.q.full1", "g", 10, 60, payload), 3*time.Second)
		logOutcome(t, o, st)
	})

	t.Run("subject-no-stream-captures", func(t *testing.T) {
		st := workStream(t, js, "NOSUB", "plba.q.nosub", nil)
		msgs := batchOf("plba.q.nosub", "h", 0, 50, payload)
		msgs[10].Subject = "plba.q.nobody"
		o := fastBatch(t, js, msgs, 3*time.Second)
		logOutcome(t, o, st)
	})

	t.Run("subject-of-another-stream", func(t *testing.T) {
		st := workStream(t, js, "MIX", "plba.q.mix", nil)
		other := workStream(t, js, "OTHER", "plba.q.other", nil)
		msgs := batchOf("plba.q.mix", "i", 0, 50, payload)
		msgs[10].Subject = "plba.q.other"
		o := fastBatch(t, js, msgs, 3*time.Second)
		logOutcome(t, o, st)
		n, _ := msgCount(t, other)
		t.Logf("other stream holds %d", n)
	})

	t.Run("over-stream-max-msg-size", func(t *testing.T) {
		st := workStream(t, js, "BIG", "plba.q.big", func(c *jetstream.StreamConfig) { c.MaxMsgSize = 1024 })
		msgs := batchOf("plba.q.big", "j", 0, 50, payload)
		msgs[10].Data = make([]byte, 2000)
		o := fastBatch(t, js, msgs, 3*time.Second)
		logOutcome(t, o, st)
	})

	t.Run("batch-not-allowed", func(t *testing.T) {
		st := workStream(t, js, "NOFAST", "plba.q.nofast", func(c *jetstream.StreamConfig) { c.AllowBatchPublish = false })
		o := fastBatch(t, js, batchOf("plba.q.nofast", "k", 0, 50, payload), 3*time.Second)
		logOutcome(t, o, st)
		// An existing stream can be updated to allow fast batches.
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cfg := info.Config
		cfg.AllowBatchPublish = true
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatalf("update to allow_batched: %v", err)
		}
		o = fastBatch(t, js, batchOf("plba.q.nofast", "k", 0, 50, payload), 3*time.Second)
		logOutcome(t, o, st)
	})

	t.Run("schedules-in-batch", func(t *testing.T) {
		st := workStream(t, js, "SCHED", "plba.q.sched", func(c *jetstream.StreamConfig) { c.AllowMsgSchedules = true })
		msgs := batchOf("plba.q.sched", "l", 0, 20, payload)
		for i := 5; i < 10; i++ {
			msgs[i].Subject = "plba.q.sched.s.t" + uintStr(uint64(i))
			msgs[i].Header.Set("Nats-Schedule", "@at "+time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano))
			msgs[i].Header.Set("Nats-Schedule-Target", "plba.q.sched")
		}
		o := fastBatch(t, js, msgs, 3*time.Second)
		logOutcome(t, o, st)
	})
}

// TestOldServer sends a fast batch to the server at PLBA_TEST_NATS_URL (a
// 2.9 server in this workplace), which knows nothing of fast batches.
func TestOldServer(t *testing.T) {
	url := os.Getenv("PLBA_TEST_NATS_URL")
	if url == "" {
		t.Skip("PLBA_TEST_NATS_URL not set")
	}
	nc := dial(t, url)
	t.Logf("server version %s", nc.ConnectedServerVersion())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	name := "FASTBATCHPROBE_" + uintStr(uint64(time.Now().UnixNano()))
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{"fastbatchprobe." + name}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.MemoryStorage, AllowBatchPublish: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("delete stream: %v", err)
		}
	}()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("allow_batched requested, stream config says %v", info.Config.AllowBatchPublish)
	o := fastBatch(t, js, batchOf("fastbatchprobe."+name, "o", 0, 10, make([]byte, 128)), 3*time.Second)
	logOutcome(t, o, st)
}
