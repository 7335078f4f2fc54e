package memory

import "github.com/plba/plba/platform/task"

// The keys of stored tasks that Prepare generated (task.KeyGenerated:
// this process's ids, task.NewID: a random prefix fixed per process,
// then a counter, in hex) are indexed by their counter, in pages of
// keyPageLen entries,
// instead of by hash: ids are made in order, and tasks mostly enqueued,
// leased and acked in that order, so the insert at Enqueue and the
// delete at each Ack touch the page the previous one touched. Indexed by
// hash (keyIndex.live), 50,000 stored keys spread over a megabyte, and
// each Ack's delete missed the cache with the queue locked (BENCHMARKS.md,
// "plba-memory: the key index by id").

// keyPageBits sets the page size: keyPageLen entries, 520 bytes. A page
// lives while one of its keys is stored: ids interleaved among several
// queues, or a task that stays stored (delayed, failing, dead) while
// thousands are made, keep pages that hold few keys; at worst a page per
// stored task (the hash map takes about 20 bytes a key).
const (
	keyPageBits = 6
	keyPageLen  = 1 << keyPageBits
)

// genPrefix is the hex prefix of the ids task.NewID makes in this
// process (the random half, before the counter).
var genPrefix = task.NewID()[:16]

// genSeq returns the counter of key when key is written like an id
// task.NewID made in this process (32 lowercase hex digits, genPrefix
// first). A producer's key written so is not a generated key: only a
// task's own flag says that (keyIndex).
func genSeq(key string) (uint64, bool) {
	if len(key) != 32 || key[:16] != genPrefix {
		return 0, false
	}
	var s uint64
	bad := byte(0)
	for i := 16; i < 32; i++ {
		v := lowerHex[key[i]]
		bad |= v
		s = s<<4 | uint64(v&0x0f)
	}
	return s, bad&0x10 == 0
}

// lowerHex maps a lowercase hex digit to its value and every other byte
// to 0x10 (the invalid bit genSeq checks once at the end).
var lowerHex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0x10
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
	}
	return t
}()

// keyPage holds the entries of keyPageLen consecutive counters.
type keyPage struct {
	n int // entries held
	e [keyPageLen]*entry
}

// keyPages maps counters to entries: the pages by number (counter >>
// keyPageBits), the page last used, and a few empty pages for reuse.
type keyPages struct {
	m     map[uint64]*keyPage
	lastN uint64
	last  *keyPage
	spare []*keyPage
}

// maxSparePages bounds the empty pages kept for reuse.
const maxSparePages = 4

// page returns page n, nil when it holds nothing.
func (p *keyPages) page(n uint64) *keyPage {
	if p.last != nil && p.lastN == n {
		return p.last
	}
	pg := p.m[n]
	if pg != nil {
		p.last, p.lastN = pg, n
	}
	return pg
}

// get returns the entry of counter s, nil if none.
func (p *keyPages) get(s uint64) *entry {
	if pg := p.page(s >> keyPageBits); pg != nil {
		return pg.e[s&(keyPageLen-1)]
	}
	return nil
}

// put stores e under counter s, which holds nothing.
func (p *keyPages) put(s uint64, e *entry) {
	n := s >> keyPageBits
	pg := p.page(n)
	if pg == nil {
		if k := len(p.spare); k > 0 {
			pg = p.spare[k-1]
			p.spare[k-1] = nil
			p.spare = p.spare[:k-1]
		} else {
			pg = new(keyPage)
		}
		if p.m == nil {
			p.m = make(map[uint64]*keyPage)
		}
		p.m[n] = pg
		p.last, p.lastN = pg, n
	}
	pg.e[s&(keyPageLen-1)] = e
	pg.n++
}

// del removes the entry of counter s, which holds one.
func (p *keyPages) del(s uint64) {
	n := s >> keyPageBits
	pg := p.page(n)
	pg.e[s&(keyPageLen-1)] = nil
	if pg.n--; pg.n > 0 {
		return
	}
	delete(p.m, n)
	if p.last == pg {
		p.last = nil
	}
	if len(p.spare) < maxSparePages {
		p.spare = append(p.spare, pg)
	}
}
