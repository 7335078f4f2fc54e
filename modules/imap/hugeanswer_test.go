package imap_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
)

// hugeAnswer answers the first command of any client whose line holds
// every one of words (upper case) with head followed by size bytes, sent
// until the client stops reading; later ones reach the server.
func hugeAnswer(t *testing.T, srv *memserver.Server, head string, size int64, words ...string) *imaptest.Proxy {
	t.Helper()
	return hugeAnswers(t, srv, 1, head, size, words...)
}

// hugeAnswers is hugeAnswer for the first n such commands.
func hugeAnswers(t *testing.T, srv *memserver.Server, n int32, head string, size int64, words ...string) *imaptest.Proxy {
	t.Helper()
	var left atomic.Int32
	left.Store(n)
	chunk := strings.Repeat("x", 1<<20)
	return imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		up := strings.ToUpper(line)
		for _, w := range words {
			if !strings.Contains(up, w) {
				return false
			}
		}
		if left.Add(-1) < 0 {
			return false
		}
		c.Reply(head)
		for sent := int64(0); sent < size; sent += int64(len(chunk)) {
			select {
			case <-c.Closed():
				return true
			default:
			}
			c.Reply(chunk) // fails at once once the client has closed
		}
		return true
	}})
}

// hugeEnvelope answers the first metadata fetch (a UID FETCH of
// ENVELOPE) of any client with an envelope whose first string is a
// literal of size bytes.
func hugeEnvelope(t *testing.T, srv *memserver.Server, size int64) *imaptest.Proxy {
	t.Helper()
	return hugeAnswer(t, srv, fmt.Sprintf("* 1 FETCH (UID 1 RFC822.SIZE 100 ENVELOPE ({%d}\r\n", size), size, "UID FETCH", "ENVELOPE")
}

// heapBound is how far the heap may grow while a source meets an answer
// of 256 MiB: the budget (4 MiB here), go-imap's string building over it
// (about four times) and garbage not yet collected. Unbounded, the growth
// was 770 MiB to 1 GiB (three to four times the answer); 635 MiB in a CI
// run under the race detector, where a UID SEARCH was budgeted 192 MiB
// for a mailbox of two messages (selectWait).
const heapBound = 64 << 20

// heapPeak samples the heap's size until the returned function is
// called, which returns its largest growth over what it was at first.
func heapPeak() (stop func() int64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	peak := base
	done, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(done)
		<-sampled
		return int64(peak) - int64(base)
	}
}

// runUntilEmitted runs src until em holds n tasks or 30s have passed,
// and returns how long it took and the heap's largest growth meanwhile.
func runUntilEmitted(t *testing.T, src *imap.Source, em *fakeEmitter, n int) (took time.Duration, growth int64) {
	t.Helper()
	peak := heapPeak()
	began := time.Now()
	start(t, src, em)
	for em.count() < n && time.Since(began) < 30*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(began), peak()
}

// A metadata answer holding a literal of 256 MiB (a hostile or broken
// server) fails the fetch once it exceeds max_batch_bytes, the error
// saying so (max_batch_bytes, 1 MiB here, is taken as 4 MiB), the
// client's memory growing by far less than the literal,
// and the source reconnects and emits the mail. Before, go-imap read the
// whole literal into memory (no limit on an envelope's strings), the
// heap growing by hundreds of MiB, until the command timeout at most.
func TestHugeMetadataLiteralIsCutAtMaxBatchBytes(t *testing.T) { // not parallel: it measures the heap
	const literal = 256 << 20
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 2)
	p := hugeEnvelope(t, srv, literal)
	cfg := testConfig(p.Host(), p.Port())
	cfg.MaxBatchBytes = 1 << 20
	cfg.CommandTimeout = time.Minute
	core, logs := observer.New(zapcore.InfoLevel)
	src, err := imap.NewSource(cfg, zap.New(core))
	require.NoError(t, err)
	t.Cleanup(func() { _ = src.Close() })

	em := &fakeEmitter{}
	took, growth := runUntilEmitted(t, src, em, 2)
	t.Logf("heap growth %d MiB (literal %d MiB), mail emitted after %s", growth>>20, literal>>20, took)
	require.Less(t, growth, int64(heapBound), "the heap grew with the literal")
	require.Equal(t, 2, em.count(), "the mail was not emitted within 30s")

	tooLarge := lostErrors(logs, "exceeded 4194304 bytes (max_batch_bytes, at least 4194304)")
	require.NotEmpty(t, tooLarge, "the session did not fail on the answer's size: %q", lastLostError(logs))
	t.Logf("failed with: %s", tooLarge[0])
	require.Contains(t, tooLarge[0], "metadata fetch")
	require.GreaterOrEqual(t, src.Status().Reconnects, uint64(1))
}

// A mail whose envelope the server always answers with a string beyond
// max_batch_bytes, the others served, is given up as a mail the server
// drops the connection on (see poison.go): its stand-in is emitted, and
// the others are emitted.
func TestMailWithAHugeEnvelopeIsGivenUp(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 3)
	chunk := strings.Repeat("x", 64<<10)
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{OnLine: func(c *imaptest.Conn, line string) bool {
		f := strings.Fields(strings.ToUpper(line))
		if len(f) < 4 || f[1] != "UID" || f[2] != "FETCH" || !strings.Contains(line, "ENVELOPE") || !holds(f[3], 2) {
			return false
		}
		c.Reply("* 2 FETCH (UID 2 RFC822.SIZE 100 ENVELOPE ({67108864}\r\n")
		for i := 0; i < 64<<20/len(chunk); i++ {
			c.Reply(chunk)
		}
		return true
	}})
	cfg := testConfig(p.Host(), p.Port())
	cfg.MaxBatchBytes = 256 << 10 // the answer's budget: 4 MiB
	src := newSource(t, cfg)
	em := &fakeEmitter{}
	start(t, src, em)
	require.Eventually(t, func() bool { return src.Status().Refused == 1 }, 30*time.Second, 5*time.Millisecond,
		"the mail is not given up: %+v", src.Status())
	waitEmitted(t, em, 3)
	for _, tk := range em.all() {
		t.Logf("%s %s", tk.Header(imap.HeaderUID), tk.Header(imap.HeaderMessageID))
	}
}

// holds reports whether the IMAP sequence set holds n.
func holds(set string, n int) bool {
	for _, r := range strings.Split(set, ",") {
		lo, hi, ok := strings.Cut(r, ":")
		if !ok {
			hi = lo
		}
		var a, b int
		_, errA := fmt.Sscan(lo, &a)
		_, errB := fmt.Sscan(hi, &b)
		if hi == "*" {
			b, errB = 1<<31, nil
		}
		if errA == nil && errB == nil && (a <= n && n <= b || b <= n && n <= a) {
			return true
		}
	}
	return false
}

// A body sent as a quoted string of 256 MiB (a hostile or broken server:
// go-imap reads a quoted string whole, where the source reads a literal
// itself, bounded by max_message_size) fails the fetch past
// max_batch_bytes (at least 4 MiB: 1 MiB here is taken as 4 MiB), the
// error saying so, the heap
// growing by far less than the string, and the source reconnects and
// emits the mail. Before, the heap grew with the string.
func TestHugeQuotedBodyIsCutAtMaxBatchBytes(t *testing.T) { // not parallel: it measures the heap
	const size = 256 << 20
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 2)
	p := hugeAnswer(t, srv, "* 1 FETCH (UID 1 BODY[] \"", size, "UID FETCH", "BODY.PEEK[]")
	cfg := testConfig(p.Host(), p.Port())
	cfg.MaxBatchBytes = 1 << 20 // the answer's budget: 4 MiB
	cfg.CommandTimeout = time.Minute
	core, logs := observer.New(zapcore.InfoLevel)
	src, err := imap.NewSource(cfg, zap.New(core))
	require.NoError(t, err)
	t.Cleanup(func() { _ = src.Close() })

	em := &fakeEmitter{}
	took, growth := runUntilEmitted(t, src, em, 2)
	t.Logf("heap growth %d MiB (string %d MiB), mail emitted after %s", growth>>20, size>>20, took)
	require.Less(t, growth, int64(heapBound), "the heap grew with the string")
	require.Equal(t, 2, em.count(), "the mail was not emitted within 30s")
	tooLarge := lostErrors(logs, "body fetch exceeded 4194304 bytes (max_batch_bytes, at least 4194304)")
	require.NotEmpty(t, tooLarge, "the session did not fail on the answer's size: %q", lastLostError(logs))
	t.Logf("failed with: %s", tooLarge[0])
}
