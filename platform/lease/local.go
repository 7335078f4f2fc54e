package lease

import (
	"context"
	"sync"
	"time"
)

// Local is a lease within one process: Acquire waits for the previous
// hold's Release. It is what a single host and the memory backend use.
type Local struct {
	name   string
	holder string
	slot   chan struct{} // holds one token while the lease is free

	mu    sync.Mutex
	since time.Time
	held  bool
}

var _ Lease = (*Local)(nil)

// NewLocal returns a local lease named name; holder names this host in
// its Status.
func NewLocal(name, holder string) *Local {
	l := &Local{name: name, holder: holder, slot: make(chan struct{}, 1)}
	l.slot <- struct{}{}
	return l
}

// Name returns the lease's name.
func (l *Local) Name() string { return l.name }

// Acquire waits until the lease is free and takes it.
func (l *Local) Acquire(ctx context.Context) (Hold, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.slot:
	}
	l.mu.Lock()
	l.held, l.since = true, time.Now()
	l.mu.Unlock()
	return &localHold{l: l}, nil
}

// Status returns the lease's holder.
func (l *Local) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Status{Name: l.name, Held: l.held}
	if l.held {
		s.Holder, s.Since = l.holder, l.since
	}
	return s
}

type localHold struct {
	l    *Local
	once sync.Once
}

// never is a Lost channel that never closes: a local hold is not lost.
var never = make(chan struct{})

func (h *localHold) Lost() <-chan struct{} { return never }

func (h *localHold) Release(context.Context) error {
	h.once.Do(func() {
		h.l.mu.Lock()
		h.l.held = false
		h.l.mu.Unlock()
		h.l.slot <- struct{}{}
	})
	return nil
}

// Locals is a Provider of local leases: one per name, in this process.
// The zero value is ready; Holder names this host in their Status.
type Locals struct {
	Holder string

	mu     sync.Mutex
	leases map[string]*Local
}

var (
	_ Provider = (*Locals)(nil)
	_ Provider = (*KV)(nil)
)

// Lease returns the local lease named name.
func (p *Locals) Lease(name string) Lease {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leases == nil {
		p.leases = map[string]*Local{}
	}
	l, ok := p.leases[name]
	if !ok {
		l = NewLocal(name, p.Holder)
		p.leases[name] = l
	}
	return l
}
