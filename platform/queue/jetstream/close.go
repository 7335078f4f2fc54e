package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Close stops leasing (blocked Lease calls return queue.ErrClosed),
// gives prefetched messages back without counting a delivery (see
// giveBack), waits until every delivery handed out is
// settled (an Ack's ack sent, when it waited for the finished-key record:
// see Ack; or its lease ended, or its settlement failed: the caller left
// it to the server) or ctx ends, then drains the connection and
// shuts the owned embedded server down. Unsettled deliveries are
// redelivered by the server after their AckWait. Close is idempotent.
func (b *Backend) Close(ctx context.Context) error {
	b.closeOnce.Do(func() {
		close(b.closing)
		if !b.started.Load() {
			b.teardown(ctx)
			return
		}
		b.stopConsumers(ctx)
		waitErr := b.waitInflight(ctx)
		close(b.leaseStop)
		b.lwg.Wait()
		b.closeErr = errors.Join(waitErr, b.teardown(ctx))
	})
	return b.closeErr
}

// waitInflight waits until no delivery is in flight or ctx ends. An Ack
// waiting for its finished-key record (see Ack) is waited for only while
// the connection is up: once it is lost, the record's answer cannot come
// (its publish would time out after publish_timeout), and the server
// delivers the task again after its AckWait, as it does a task whose ack
// was cut off.
func (b *Backend) waitInflight(ctx context.Context) error {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	conn, stop := b.whileConnected(context.Background())
	defer stop()
	lost := conn.Done()
	for {
		n := b.pruneInflight(time.Now(), conn.Err() != nil)
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("jetstream: close: %d deliveries unsettled (redelivered after their lease): %w", n, ctx.Err())
		case <-b.settled:
		case <-tick.C:
		case <-lost:
			lost = nil // counted without the acks waiting for their record from now on
		}
	}
}

// teardown stops the advisory watcher, drains the connection and shuts
// the owned server down.
func (b *Backend) teardown(ctx context.Context) error {
	b.stopPull()
	var errs []error
	if b.metricReg != nil {
		_ = b.metricReg.Unregister()
	}
	// The advisory consumer may be dead-lettering an exhausted task: let
	// it finish (it needs the connection) before the connection goes.
	if err := b.stopAdvisories(ctx); err != nil {
		errs = append(errs, err)
	}
	if b.js != nil && b.nc != nil && !b.nc.IsClosed() {
		// Acks wait for their finished-key record (markDoneThenAck):
		// let the records' acks arrive, so the acks go out. Not from a
		// server this connection lost: those tasks are delivered again.
		wctx, stop := b.whileConnected(ctx)
		select {
		case <-b.js.PublishAsyncComplete():
		case <-wctx.Done():
		}
		stop()
	}
	if b.nc != nil && !b.nc.IsClosed() {
		closed := make(chan struct{})
		b.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
		if err := b.nc.Drain(); err != nil {
			b.nc.Close()
		} else {
			// Draining flushes what is buffered; a server that does not
			// answer within the publish timeout (a frozen network) is
			// not waited for longer.
			dctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
			select {
			case <-closed:
			case <-dctx.Done():
				b.nc.Close()
				errs = append(errs, fmt.Errorf("jetstream: drain connection: %w", dctx.Err()))
			}
			cancel()
		}
	}
	b.connDone.Store(true)
	if b.ownsSrv && b.srv != nil {
		if err := b.srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
