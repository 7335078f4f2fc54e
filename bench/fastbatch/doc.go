// Package fastbatchprobe measures whether NATS "fast batch publishing"
// (nats-server 2.14+, stream config allow_batched) could replace plba's
// one-PublishMsgAsync-per-task Enqueue. It is a module of its own, so the
// orbit.go jetstreamext v0.4.0 client it tries (and the nats.go 1.56 it
// needs) do not become dependencies of plba, and its tests carry the build
// tag fastbatchprobe, so they never run in CI:
//
//	cd bench/fastbatch && go test -tags fastbatchprobe -run . -v -count=1 .
//
// TestCost publishes the same plba-shaped messages through PublishMsgAsync
// (plba's path today) and through jetstreamext.FastPublisher and reports
// process CPU and allocations per message; TestSemantics records what the
// server and the client report for duplicates, a full stream, a subject no
// stream captures, and (with PLBA_TEST_NATS_URL) an old server.
package fastbatchprobe
