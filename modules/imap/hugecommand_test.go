package imap_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/modules/imap"
	"github.com/plba/plba/modules/imap/imaptest"
	"github.com/plba/plba/modules/imap/memserver"
	"github.com/plba/plba/platform/task"
)

// The answers other than fetches are bounded too (see meter.go): a
// string literal of 256 MiB in them fails the command past its budget
// (here answerBudget, 4 MiB: the mailbox is small), the heap growing by
// far less than the literal, and the source reconnects and goes on.

// hugeSource is a source on p logging at Info into the returned logs.
func hugeSource(t *testing.T, cfg imap.Config) (*imap.Source, *observer.ObservedLogs) {
	t.Helper()
	cfg.MaxBatchBytes = 1 << 20 // the answers' budget: 4 MiB
	cfg.CommandTimeout = time.Minute
	core, logs := observer.New(zapcore.InfoLevel)
	src, err := imap.NewSource(cfg, zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core())))
	require.NoError(t, err)
	t.Cleanup(func() { _ = src.Close() })
	return src, logs
}

// A UID SEARCH answered with an ESEARCH whose tag is a literal of 256
// MiB (go-imap reads it whole, before it looks at it). Before, the heap
// grew with the literal.
func TestHugeSearchAnswerIsBounded(t *testing.T) { // not parallel: it measures the heap
	const size = 256 << 20
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 2)
	p := hugeAnswer(t, srv, fmt.Sprintf("* ESEARCH (TAG {%d}\r\n", size), size, "UID SEARCH")
	src, logs := hugeSource(t, testConfig(p.Host(), p.Port()))

	em := &fakeEmitter{}
	took, growth := runUntilEmitted(t, src, em, 2)
	t.Logf("heap growth %d MiB (literal %d MiB), mail emitted after %s", growth>>20, size>>20, took)
	require.Less(t, growth, int64(heapBound), "the heap grew with the literal")
	require.Equal(t, 2, em.count(), "the mail was not emitted within 30s")
	tooLarge := lostErrors(logs, "answer to the UID SEARCH exceeded 4194304 bytes (max_batch_bytes, at least 4194304)")
	require.NotEmpty(t, tooLarge, "the session did not fail on the answer's size: %q", lastLostError(logs))
	t.Logf("failed with: %s", tooLarge[0])

	appendN(t, srv, 3, 1)
	waitEmitted(t, em, 3)
}

// Data the server sends during IDLE (here an unsolicited STATUS whose
// mailbox name is a literal of 256 MiB, which go-imap reads whole) is
// bounded as one answer. Before, the heap grew with the literal.
func TestHugeDataDuringIdleIsBounded(t *testing.T) { // not parallel: it measures the heap
	const size = 256 << 20
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 1)
	p := hugeAnswer(t, srv, fmt.Sprintf("+ idling\r\n* STATUS {%d}\r\n", size), size, "IDLE")
	cfg := testConfig(p.Host(), p.Port())
	cfg.Mode = imap.ModeIdle
	src, logs := hugeSource(t, cfg)

	em := &fakeEmitter{}
	peak := heapPeak()
	start(t, src, em)
	waitEmitted(t, em, 1)
	require.Eventually(t, func() bool { return src.Status().Reconnects >= 1 }, 30*time.Second, 5*time.Millisecond,
		"the IDLE was not cut: %+v", src.Status())
	growth := peak()
	t.Logf("heap growth %d MiB (literal %d MiB)", growth>>20, size>>20)
	require.Less(t, growth, int64(heapBound), "the heap grew with the literal")
	tooLarge := lostErrors(logs, "answer to the IDLE exceeded 4194304 bytes (max_batch_bytes, at least 4194304)")
	require.NotEmpty(t, tooLarge, "the session did not fail on the answer's size: %q", lastLostError(logs))
	t.Logf("failed with: %s", tooLarge[0])

	appendN(t, srv, 2, 1)
	waitEmitted(t, em, 2)
}

// A completion whose mail is looked up by Message-ID (UIDVALIDITY
// changed) is bounded in its UID SEARCH and in its envelope fetch: each
// answered with a literal of 256 MiB, the batch fails past the
// budget, saying so, the heap growing by far less, and the completion
// is applied on the next connections. Before, the search's heap grew
// with the literal.
func TestHugeAnswersToACompletionLookupAreBounded(t *testing.T) { // not parallel: it measures the heap
	for _, tc := range []struct {
		name, head string
		words      []string
		what       string
	}{
		{"search", "* ESEARCH (TAG {%d}\r\n", []string{"UID SEARCH", "HEADER"}, "UID SEARCH"},
		{"envelope", "* 1 FETCH (UID 1 RFC822.SIZE 100 ENVELOPE ({%d}\r\n", []string{"UID FETCH", "ENVELOPE"}, "metadata fetch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const size = 256 << 20
			srv := imaptest.NewServer(t, memserver.Options{})
			mail := imaptest.Message("1@lookup", "order", "the order")
			_, err := srv.Append("INBOX", mail)
			require.NoError(t, err)
			// Twice: a batch that fails is tried once more at once, on a
			// new connection, before it fails (and says why).
			p := hugeAnswers(t, srv, 2, fmt.Sprintf(tc.head, size), size, tc.words...)
			src, _ := hugeSource(t, testConfig(p.Host(), p.Port()))
			validity, err := srv.UIDValidity("INBOX")
			require.NoError(t, err)
			tk := &task.Task{Key: "k", Payload: mail, Headers: map[string]string{
				imap.HeaderMessageID: "1@lookup", imap.HeaderUID: "1", imap.HeaderUIDValidity: strconv.FormatUint(uint64(validity)+1, 10),
			}}

			peak := heapPeak()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, src.Complete(ctx, tk, task.Succeeded, ""))
			require.Eventually(t, func() bool { return src.Status().LastCompletionError != "" }, 30*time.Second, 5*time.Millisecond,
				"the lookup did not fail: %+v", src.Status())
			growth := peak()
			t.Logf("heap growth %d MiB (literal %d MiB)", growth>>20, size>>20)
			require.Less(t, growth, int64(heapBound), "the heap grew with the literal")
			last := src.Status().LastCompletionError
			t.Logf("failed with: %s", last)
			require.Contains(t, last, "answer to the "+tc.what+" exceeded 4194304 bytes (max_batch_bytes, at least 4194304)")

			require.NoError(t, src.WaitCompletions(ctx), "status %+v", src.Status())
			require.EqualValues(t, 1, src.Status().CompletedOK)
			processed := messages(t, srv, "Processed")
			require.Len(t, processed, 1)
			require.True(t, strings.Contains(string(processed[0].Raw), "1@lookup"))
		})
	}
}

// An honest UID SEARCH answer listing a million UIDs (a server without
// ESEARCH: about 7 MB, beyond max_batch_bytes) in a mailbox that holds
// a million messages is within its budget, which grows with the
// mailbox (12 bytes per UID it can hold): the scan goes on and emits.
func TestLargeSearchAnswerOfALargeMailboxIsNotCut(t *testing.T) {
	t.Parallel()
	const n = 1_000_000
	srv := imaptest.NewServer(t, memserver.Options{})
	appendN(t, srv, 1, 2)
	var list strings.Builder
	list.WriteString("* SEARCH")
	for u := 1; u <= n; u++ {
		list.WriteString(" " + strconv.Itoa(u))
	}
	list.WriteString("\r\n")
	require.Greater(t, list.Len(), 4<<20)
	p := imaptest.NewProxyWith(t, srv.Addr(), imaptest.Hooks{
		OnLine: func(c *imaptest.Conn, line string) bool {
			tag, name, _ := command(line)
			if name != "UID SEARCH" {
				return false
			}
			c.Reply(list.String() + tag + " OK SEARCH completed\r\n")
			return true
		},
		Rewrite: func(b []byte) []byte { // the mailbox announced holds a million messages
			return []byte(strings.ReplaceAll(string(b), "* 2 EXISTS", fmt.Sprintf("* %d EXISTS", n)))
		},
	})
	src, logs := hugeSource(t, testConfig(p.Host(), p.Port()))
	em := &fakeEmitter{}
	start(t, src, em)
	waitEmitted(t, em, 2)
	require.Empty(t, lostErrors(logs, "answer too large"))
}
