package admin

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"sync"
)

// AuditPath serves the newest audit entries (GET, RoleViewer).
const AuditPath = "/admin/v1/audit"

// AuditPage is the answer of GET AuditPath: entries newest first.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	// NextCursor, when set, is the cursor parameter of the next (older)
	// page.
	NextCursor string `json:"next_cursor,omitempty"`
	// Evicted is how many entries, older than every one the ring holds,
	// the ring has dropped since the server started to keep to its size
	// (audit.ring_size): the last page is the end of the ring, not of the
	// audit. They are in the log and, with an audit store, in the store
	// (which also keeps the entries of earlier runs the ring was not
	// filled with at start: those are not counted here).
	Evicted int64 `json:"evicted,omitempty"`
}

// Paging limits of GET AuditPath.
const (
	DefaultAuditLimit = 50
	MaxAuditLimit     = 1000
)

// ring holds the newest entries, oldest first, at most size.
type ring struct {
	mu      sync.Mutex
	size    int
	entries []AuditEntry // a circular buffer once full
	next    int          // where the next entry goes once full
	evicted int64        // entries dropped to keep to size
}

func newRing(size int) *ring { return &ring{size: size} }

func (r *ring) add(e AuditEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.size <= 0 {
		r.evicted++
		return
	}
	if len(r.entries) < r.size {
		r.entries = append(r.entries, e)
		return
	}
	r.evicted++
	r.entries[r.next] = e
	r.next = (r.next + 1) % r.size
}

// page returns at most limit entries older than before (0: the newest),
// newest first, whether older ones remain, and how many the ring dropped.
func (r *ring) page(before int64, limit int) ([]AuditEntry, bool, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.entries)
	out := make([]AuditEntry, 0, min(limit, n))
	more := false
	for i := n - 1; i >= 0; i-- { // newest first
		e := r.entries[(r.next+i)%n]
		if before != 0 && e.ID >= before {
			continue
		}
		if len(out) == limit {
			more = true
			break
		}
		out = append(out, e)
	}
	return out, more, r.evicted
}

// fill puts entries (loaded from the stream at start) in the ring, in
// the order of their ids, before anything recorded since.
func (r *ring) fill(es []AuditEntry) {
	r.mu.Lock()
	old := r.entries
	if len(old) == r.size && r.next > 0 { // unroll the circle: oldest first
		old = append(append([]AuditEntry(nil), old[r.next:]...), old[:r.next]...)
	}
	all := append(append([]AuditEntry(nil), es...), old...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	if len(all) > r.size {
		r.evicted += int64(len(all) - r.size)
		all = all[len(all)-r.size:]
	}
	r.entries, r.next = all, 0
	r.mu.Unlock()
}

// auditRoute serves the ring: ?limit=N (default 50, at most 1000) and
// ?cursor=<next_cursor of the page before>.
func auditRoute(rg *ring) Route {
	return Route{Pattern: "GET " + AuditPath, Role: RoleViewer, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit := DefaultAuditLimit
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > MaxAuditLimit {
				WriteJSON(w, http.StatusBadRequest, Error{Error: "admin: audit: limit must be a number from 1 to " + strconv.Itoa(MaxAuditLimit)})
				return
			}
			limit = n
		}
		var before int64
		if s := q.Get("cursor"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n <= 0 {
				WriteJSON(w, http.StatusBadRequest, Error{Error: "admin: audit: cursor must be the next_cursor of a page"})
				return
			}
			before = n
		}
		es, more, evicted := rg.page(before, limit)
		p := AuditPage{Entries: es, Evicted: evicted}
		if more && len(es) > 0 {
			p.NextCursor = strconv.FormatInt(es[len(es)-1].ID, 10)
		}
		WriteJSON(w, http.StatusOK, p)
	})}
}

// AuditStore keeps audit entries beyond the process (the JetStream audit
// stream, platform/admin/auditstream). The admin server starts it in its
// own start, fills its ring from Recent, and appends every entry.
type AuditStore interface {
	// Start makes the store ready (creates the stream).
	Start(ctx context.Context) error
	// Append stores e. The server calls it as the entry is recorded,
	// in the request's goroutine, with a context bounded to 5s; an error is
	// logged (the entry is in the log and the ring either way).
	Append(ctx context.Context, e AuditEntry) error
	// Recent returns at most n of the newest entries, oldest first.
	Recent(ctx context.Context, n int) ([]AuditEntry, error)
}
