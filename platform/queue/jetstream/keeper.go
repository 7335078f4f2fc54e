package jetstream

import (
	"context"
	"time"
)

// keptLease is a receipt keep sent an in-progress ack for, and when it
// was touched before.
type keptLease struct {
	r      *receipt
	before time.Time
}

// confirmRenewals makes sure the server heard the in-progress acks sent
// at (within wait: half an AckWait, when the AckWait of a receipt sent
// one would end). Unconfirmed (a partitioned server), they do not count:
// the server may deliver those messages again, and Extend then says the
// lease is lost.
func (b *Backend) confirmRenewals(sent []keptLease, at time.Time, wait time.Duration) {
	b.confirmOrUndo(context.Background(), wait, "keep leases", func() {
		for _, k := range sent {
			k.r.unrenewed(at, k.before)
		}
	})
}

// keepLeases keeps the leases of handed-out deliveries that were promised
// beyond the server's AckWait: every quarter AckWait it sends an
// in-progress ack for each one three eighths of whose AckWait has passed
// (renewAfter), so the server's timer never runs out while the promise
// holds (one goroutine for all deliveries instead of a timer each), and
// forgets deliveries whose lease ran out unsettled. It runs until
// leaseStop closes, after Close waited for the deliveries in flight.
func (b *Backend) keepLeases() {
	defer b.lwg.Done()
	every := max(b.cfg.AckWait/4, 5*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	var rs []*receipt
	for {
		select {
		case <-b.leaseStop:
			return
		case now := <-t.C:
			b.imu.Lock()
			rs = rs[:0]
			for r := range b.inflight {
				rs = append(rs, r)
			}
			b.imu.Unlock()
			n := 0
			var sent []keptLease
			for _, r := range rs {
				forget, kept, before := r.keep(now)
				if kept {
					sent = append(sent, keptLease{r, before})
				}
				if forget {
					rs[n] = r
					n++
				}
			}
			if len(sent) > 0 {
				b.confirmRenewals(sent, now, max(b.cfg.AckWait/2, every))
			}
			if n > 0 {
				b.imu.Lock()
				for _, r := range rs[:n] {
					b.forgetLocked(r)
				}
				b.imu.Unlock()
			}
			clear(rs)
		}
	}
}

// renewAfter is how long after its last touch the keepers (keepLeases,
// keepBuffers) renew a lease or a prefetched message, and Lease a message
// it hands out (touchForHandOut): at their second tick after it, half an
// AckWait later. A renewal touches at its tick's time, and that second
// tick comes a little early when the first one was late (a loaded
// process); compared with half the AckWait, it renewed nothing, and the
// renewal waited for the third tick, leaving a quarter AckWait for the
// keeper to be scheduled and the server to hear it
// (TestTheKeepersRenewAtTheirSecondTick). Three eighths take a second
// tick up to an eighth of an AckWait early.
func renewAfter(ackWait time.Duration) time.Duration { return ackWait * 3 / 8 }
