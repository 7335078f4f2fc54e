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

// keyIndex maps task keys to keyRefs. A key Prepare generated (made:
// task.KeyGenerated) and a key a producer gave are separate keys even
// when written the same: a producer's key equal to a generated id (one
// seen, or its successor guessed) neither holds nor takes that id's task.
// The keys of stored tasks (live) that Prepare generated, this process's
// ids, are in pages, by the id's counter (keypages.go: the default key,
// and the most common, and the one whose delete at each ack missed the
// cache). Every other key is keyed by a 64-bit hash (a generated key's
// by its hash with madeMix flipped in, so that the two keys written the
// same never share a hash), which makes the three lookups every task
// costs (check, insert, delete) cheap: the key string is compared only
// on a hit, and a slot's string names its key (and space) alone. Those of
// stored tasks (live) map to their entry alone, 16 bytes a slot, whose
// task holds the key; the keys remembered after their task ended (done,
// used with Options.DedupWindow), generated or not, keep their whole
// keyRef. A hash belongs to at most one key in live and done together;
// another key with that hash goes to spill (practically never used).
type keyIndex struct {
	seed  maphash.Seed
	pages keyPages // live generated keys (genSeq)
	live  map[uint64]*entry
	done  map[uint64]keyRef
	spill map[keyID]keyRef
}

// keyID is a key with its space, as spill holds it.
type keyID struct {
	key  string
	made bool
}

// madeMix is flipped into the hash of a generated key: a producer's key
// written the same hashes apart (x ^ madeMix != x).
const madeMix = 0x9e3779b97f4a7c15

func newKeyIndex() keyIndex {
	return keyIndex{seed: maphash.MakeSeed(), live: make(map[uint64]*entry, 64), done: map[uint64]keyRef{}}
}

// hash returns the hash of key, generated (made) or a producer's.
func (x *keyIndex) hash(key string, made bool) uint64 {
	h := maphash.String(x.seed, key)
	if made {
		h ^= madeMix
	}
	return h
}

// pageSeq returns the counter of key when it is a generated key (made)
// that the pages hold: one of this process's ids, as every key Prepare
// generates in it is.
func pageSeq(key string, made bool) (uint64, bool) {
	if !made {
		return 0, false
	}
	return genSeq(key)
}

// get returns the ref of key, generated (made) or a producer's, whose
// hash is h.
func (x *keyIndex) get(key string, made bool, h uint64) (keyRef, bool) {
	if s, ok := pageSeq(key, made); ok {
		if e := x.pages.get(s); e != nil && e.t.Key == key {
			return keyRef{key: key, e: e}, true
		}
	} else if e, ok := x.live[h]; ok && e.t.Key == key {
		return keyRef{key: key, e: e}, true
	}
	if ref, ok := x.done[h]; ok && ref.key == key {
		return ref, true
	}
	if x.spill != nil {
		ref, ok := x.spill[keyID{key, made}]
		return ref, ok
	}
	return keyRef{}, false
}

// add indexes the key of e, a stored task's entry (not refused: no
// other stored task holds it), whose hash is h.
func (x *keyIndex) add(e *entry, h uint64) {
	key, made := e.t.Key, e.t.KeyGenerated()
	if s, ok := pageSeq(key, made); ok {
		x.pages.put(s, e)
		e.kh, e.kpage, e.kspill = s, true, false
		return
	}
	e.kh, e.kpage = h, false
	e.kspill = x.set(key, made, h, keyRef{e: e})
}

// drop forgets the key of e, indexed by add.
func (x *keyIndex) drop(e *entry) {
	if e.kpage {
		x.pages.del(e.kh)
		return
	}
	x.forget(e.t.Key, e.t.KeyGenerated(), e.kh, e.kspill)
}

// keep replaces the ref of e's key, a producer's (a generated key is not
// remembered after its task: queueState.release), indexed by add, with
// ref (e == nil: a key remembered after its task ended) and returns the
// key's hash.
func (x *keyIndex) keep(e *entry, ref keyRef) (h uint64) {
	x.replace(e.t.Key, false, e.kh, e.kspill, ref)
	return e.kh
}

// taken reports whether h belongs to a key other than key. Two keys
// written the same, one generated and one a producer's, never share a
// hash (madeMix): the string at h names one key.
func (x *keyIndex) taken(key string, h uint64) bool {
	if e, ok := x.live[h]; ok {
		return e.t.Key != key
	}
	if ref, ok := x.done[h]; ok {
		return ref.key != key
	}
	return false
}

// set stores ref for key (generated when made; whose hash is h) and
// reports whether it went to spill (its hash is taken by another key).
func (x *keyIndex) set(key string, made bool, h uint64, ref keyRef) (spilled bool) {
	ref.key = key
	if !x.taken(key, h) {
		x.put(h, ref)
		return false
	}
	if x.spill == nil {
		x.spill = make(map[keyID]keyRef)
	}
	x.spill[keyID{key, made}] = ref
	return true
}

// put stores ref under h, in live or done, and takes h out of the other.
func (x *keyIndex) put(h uint64, ref keyRef) {
	if ref.e != nil {
		if len(x.done) > 0 {
			delete(x.done, h)
		}
		x.live[h] = ref.e
		return
	}
	delete(x.live, h)
	x.done[h] = ref
}

// replace stores ref for key (generated when made; whose hash is h),
// which is stored already, where set put it (spilled is what set
// returned), without looking the key up first. A stored key stays where
// it is: set changes only the slot of its own key.
func (x *keyIndex) replace(key string, made bool, h uint64, spilled bool, ref keyRef) {
	ref.key = key
	if spilled {
		x.spill[keyID{key, made}] = ref
		return
	}
	x.put(h, ref)
}

// forget deletes key (generated when made; whose hash is h), stored where
// set put it (spilled is what set returned), without looking it up first.
func (x *keyIndex) forget(key string, made bool, h uint64, spilled bool) {
	if spilled {
		delete(x.spill, keyID{key, made})
		return
	}
	delete(x.live, h)
	if len(x.done) > 0 {
		delete(x.done, h)
	}
}

// del forgets key (generated when made; whose hash is h).
func (x *keyIndex) del(key string, made bool, h uint64) {
	if !x.taken(key, h) {
		if _, ok := x.live[h]; ok {
			delete(x.live, h)
			return
		}
		if _, ok := x.done[h]; ok {
			delete(x.done, h)
			return
		}
	}
	if x.spill != nil {
		delete(x.spill, keyID{key, made})
	}
}
