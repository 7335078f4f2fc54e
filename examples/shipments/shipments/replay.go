package shipments

import (
	"encoding/hex"
	"sync"
	"time"
)

// replays remembers the signatures of the events the webhook queued
// until their timestamps leave the tolerance: the same signed request
// posted again within it (a replay, or a sender retrying a request whose
// answer it lost) is answered as accepted and not queued again. Past the
// tolerance the signature check refuses it. It is the host's memory:
// behind a load balancer, another host sees a replay first, and the
// queue's de-duplication by the shipment's key drops it while it lasts.
// A request is claimed while it is being queued (claim): the same request
// posted again meanwhile is told so, not queued a second time.
type replays struct {
	mu    sync.Mutex
	sigs  map[string]replay
	busy  map[string]struct{} // claimed, being queued
	limit int                 // past it, an add forgets the expired ones first
}

type replay struct {
	answer  Answer    // what the webhook answered
	expires time.Time // when the timestamp leaves the tolerance
}

// pruneAt is how many signatures replays holds before an add forgets the
// expired ones; after that, twice what is left. Only requests signed with
// the secret are remembered, so the map grows with the warehouse's own
// traffic within the tolerance, not with an attacker's.
const pruneAt = 1024

func newReplays() *replays {
	return &replays{sigs: make(map[string]replay), busy: make(map[string]struct{}), limit: pruneAt}
}

// claimed is what claim found for a signature.
type claimed int

const (
	claimMine claimed = iota // not seen: the caller queues it, then add or release
	claimSeen                // accepted before: the answer is what it was told
	claimBusy                // being queued by another request right now
)

// claim returns the answer to the event signed sig when it was accepted
// and its timestamp is still within the tolerance at now (claimSeen);
// claimBusy when another request is queueing it; else it claims sig for
// the caller (claimMine), who must call release when done (after add or
// not), and until then every other claim of sig is claimBusy.
func (r *replays) claim(sig []byte, now time.Time) (Answer, claimed) {
	k := hex.EncodeToString(sig)
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.sigs[k]; ok && !now.After(e.expires) {
		return e.answer, claimSeen
	}
	if _, ok := r.busy[k]; ok {
		return Answer{}, claimBusy
	}
	r.busy[k] = struct{}{}
	return Answer{}, claimMine
}

// release ends the caller's claim of sig (claimMine).
func (r *replays) release(sig []byte) {
	r.mu.Lock()
	delete(r.busy, hex.EncodeToString(sig))
	r.mu.Unlock()
}

// add remembers sig's event as accepted with answer a until expires.
func (r *replays) add(sig []byte, a Answer, expires, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sigs) >= r.limit {
		for k, e := range r.sigs {
			if now.After(e.expires) {
				delete(r.sigs, k)
			}
		}
		r.limit = max(pruneAt, 2*len(r.sigs))
	}
	r.sigs[hex.EncodeToString(sig)] = replay{answer: a, expires: expires}
}
