//go:build plbaheaders

// This file is an extra adapter for the peers harness (../shared/peers), not
// part of plba's build: run.sh in this directory copies the harness, adds
// it and builds with the plbaheaders tag. It registers two variants of the
// harness's bare nats.go baseline (natsjs) that differ from it only in the
// NATS headers each message carries, so that one run shows what the headers
// plba's JetStream backend writes cost the bare client:
//
//   - natsjs-msgid: a Nats-Msg-Id (32 hex characters, unique per message),
//     which the server checks against its de-duplication window and
//     remembers;
//   - natsjs-plbahdr: the two headers plba writes for a task without a
//     key of its own: Nats-Msg-Id and Plba-Task (kind, enqueue time, the
//     key-generated flag and an unsampled W3C traceparent).
//
// Enqueue, the stream and the Work loop are natsjs's own.
package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

type natsjsHeadersAdapter struct {
	natsjsAdapter
	name string
	all  bool // both headers; otherwise Nats-Msg-Id alone
}

func init() {
	register(entry{Name: "natsjs-msgid",
		New:  func(env Env) Adapter { return &natsjsHeadersAdapter{natsjsAdapter{env: env}, "natsjs-msgid", false} },
		Note: "natsjs with a unique Nats-Msg-Id per message (plba experiment)"})
	register(entry{Name: "natsjs-plbahdr",
		New:  func(env Env) Adapter { return &natsjsHeadersAdapter{natsjsAdapter{env: env}, "natsjs-plbahdr", true} },
		Note: "natsjs with plba's two headers per message (plba experiment)"})
}

func (a *natsjsHeadersAdapter) Name() string { return a.name }

// Enqueue publishes as natsjs does, each message with its headers. The
// header values are built as cheaply as plba builds its own: one string per
// value.
func (a *natsjsHeadersAdapter) Enqueue(ctx context.Context, n int) error {
	payload := a.env.Payload()
	var id [16]byte
	copy(id[:8], "plba-hdr")
	for i := 0; i < n; i++ {
		for b, v := 15, i; b >= 8; b, v = b-1, v>>8 {
			id[b] = byte(v)
		}
		key := hex.EncodeToString(id[:])
		h := nats.Header{"Nats-Msg-Id": {key}}
		if a.all {
			h["Plba-Task"] = []string{"kind=peers.noop at=" + time.Now().UTC().Format(time.RFC3339Nano) +
				" key-generated traceparent=00-" + key + "-" + key[16:] + "-00"}
		}
		if _, err := a.js.PublishMsgAsync(&nats.Msg{Subject: natsjsSubject, Data: payload, Header: h}); err != nil {
			return err
		}
	}
	select {
	case <-a.js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	if e := a.pubErr.Load(); e > 0 {
		return fmt.Errorf("%d async publishes failed", e)
	}
	info, err := a.stream.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs != uint64(n) {
		return fmt.Errorf("stream holds %d messages, want %d", info.State.Msgs, n)
	}
	return nil
}
