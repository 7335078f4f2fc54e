package memory

import (
	"hash/maphash"

	"github.com/plba/plba/platform/task"
)

// keyRef is what the de-duplication index knows of a key: its live entry,
// or (e == nil) until when the key stays refused after its task ended,
// and how it ended (outcome, reason), for the duplicates Enqueue drops.
type keyRef struct {
	key     string
	e       *entry
	until   int64
	outcome task.Outcome
	reason  string
}

// keyIndex maps task keys to keyRefs. It is keyed by a 64-bit hash of the
// key, which makes the three lookups every task costs (check, insert,
// delete) cheap: the key string is compared only on a hit. A key whose
// hash is taken by a different key goes to spill (practically never
// used).
type keyIndex struct {
	seed  maphash.Seed
	byH   map[uint64]keyRef
	spill map[string]keyRef
}

func newKeyIndex() keyIndex {
	return keyIndex{seed: maphash.MakeSeed(), byH: make(map[uint64]keyRef, 64)}
}

func (x *keyIndex) hash(key string) uint64 { return maphash.String(x.seed, key) }

// get returns the ref of key (whose hash is h).
func (x *keyIndex) get(key string, h uint64) (keyRef, bool) {
	if ref, ok := x.byH[h]; ok && ref.key == key {
		return ref, true
	}
	if x.spill != nil {
		ref, ok := x.spill[key]
		return ref, ok
	}
	return keyRef{}, false
}

// set stores ref for key (whose hash is h) and reports whether it went to
// spill (its hash is taken by another key).
func (x *keyIndex) set(key string, h uint64, ref keyRef) (spilled bool) {
	ref.key = key
	if cur, ok := x.byH[h]; !ok || cur.key == key {
		x.byH[h] = ref
		return false
	}
	if x.spill == nil {
		x.spill = make(map[string]keyRef)
	}
	x.spill[key] = ref
	return true
}

// replace stores ref for key (whose hash is h), which is stored already,
// where set put it (spilled is what set returned): one map operation,
// without looking the key up first. A stored key stays where it is: set
// changes only the slot of its own key.
func (x *keyIndex) replace(key string, h uint64, spilled bool, ref keyRef) {
	ref.key = key
	if spilled {
		x.spill[key] = ref
		return
	}
	x.byH[h] = ref
}

// forget deletes key (whose hash is h), stored where set put it (spilled
// is what set returned): one map operation, without looking it up first.
func (x *keyIndex) forget(key string, h uint64, spilled bool) {
	if spilled {
		delete(x.spill, key)
		return
	}
	delete(x.byH, h)
}

// del forgets key (whose hash is h).
func (x *keyIndex) del(key string, h uint64) {
	if cur, ok := x.byH[h]; ok && cur.key == key {
		delete(x.byH, h)
		return
	}
	if x.spill != nil {
		delete(x.spill, key)
	}
}
