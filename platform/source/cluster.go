package source

import (
	"fmt"
	"time"

	"github.com/plba/plba/platform/config"
	"github.com/plba/plba/platform/lease"
)

// Exclusiver is implemented by a source that may say it must run on one
// host of the cluster at a time (an IMAP mailbox, a schedule). The runtime
// wraps a source whose Exclusive returns true in Exclusive, with the
// host's lease for the source's name: a JetStream key-value lease when the
// queue backend is JetStream, a local one (free) otherwise.
type Exclusiver interface {
	Exclusive() bool
}

// Standbyer is implemented by an exclusive source that wants to know
// when its host is a standby: Exclusive calls SetStandby(true) before it
// waits for the lease and SetStandby(false) once it holds it (and when Run
// ends). A standby may, for instance, pass its readiness check.
type Standbyer interface {
	SetStandby(on bool)
}

// MarksUser is implemented by a source that keeps marks (a Schedule that
// catches up missed runs). The runtime hands it the host's Marks (shared
// by the hosts in a JetStream key-value bucket on JetStream) before it
// starts; a source that already has marks keeps its own.
type MarksUser interface {
	UseMarks(m Marks)
}

// Defaults of LeaseConfig.
const (
	// DefaultLeaseTTL hands the lease of a dead host over within the TTL
	// and a third of it: 8 s.
	DefaultLeaseTTL = lease.DefaultTTL
	// MaxLeaseTTL bounds LeaseConfig.TTL: a hand-over after a host died
	// takes up to 4/3 of it.
	MaxLeaseTTL = 5 * time.Minute
)

// LeaseConfig configures the leases of exclusive sources (section
// "sources.lease"). With the memory backend leases are local to the
// process and only Holder is used.
type LeaseConfig struct {
	// TTL is how long a lease outlives its holder's last renewal. The
	// holder renews it every quarter TTL and stops its source a quarter
	// TTL before it could expire when it cannot renew; another host takes
	// over within TTL + TTL/3 after the holder died. Every host of a
	// cluster must agree: a host connected to servers it does not own
	// refuses to start when the bucket has another TTL (exit 2); a host
	// that owns its embedded server applies its TTL to the bucket when it
	// starts. Default 6s (hand-over within 8s); at least 1s.
	TTL time.Duration `koanf:"ttl"`
	// Bucket is the JetStream key-value bucket of the leases. Default
	// "plba_leases".
	Bucket string `koanf:"bucket"`
	// MarksBucket is the JetStream key-value bucket of the schedules'
	// marks (the last due time each ran). Default "plba_schedule_marks".
	MarksBucket string `koanf:"marks_bucket"`
	// Holder names this host in the leases' status. Default
	// "<hostname>/<pid>".
	Holder string `koanf:"holder"`
}

// WithDefaults returns c with every zero field at its default (Holder
// stays empty: the lease store fills it).
func (c LeaseConfig) WithDefaults() LeaseConfig {
	if c.TTL == 0 {
		c.TTL = DefaultLeaseTTL
	}
	if c.Bucket == "" {
		c.Bucket = lease.DefaultBucket
	}
	if c.MarksBucket == "" {
		c.MarksBucket = lease.DefaultMarksBucket
	}
	return c
}

// problems adds c's problems to ps under prefix.
func (c LeaseConfig) problems(ps *config.Problems, prefix string) {
	if c.TTL < time.Second || c.TTL > MaxLeaseTTL {
		ps.Add(prefix+"ttl", "must be between 1s and %s (got %s)", MaxLeaseTTL, c.TTL)
	}
	for key, b := range map[string]string{"bucket": c.Bucket, "marks_bucket": c.MarksBucket} {
		if !validBucket(b) {
			ps.Add(prefix+key, "must be letters, digits, '-' or '_' (got %q)", b)
		}
	}
}

func validBucket(b string) bool {
	if b == "" {
		return false
	}
	for _, r := range b {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// HandOverWithin is how long after its holder died another host takes a
// lease with this configuration over, at most.
func (c LeaseConfig) HandOverWithin() time.Duration {
	ttl := c.WithDefaults().TTL
	return ttl + ttl/3
}

// Prepare returns the sources as the runtime runs them: a source that is
// an Exclusiver saying true is wrapped in Exclusive with leases's lease of
// its name, and a MarksUser gets marks (when not nil). A nil leases means
// local leases (one process).
func Prepare(leases lease.Provider, marks Marks, sources []Source) []Source {
	if leases == nil {
		leases = &lease.Locals{}
	}
	out := make([]Source, len(sources))
	for i, s := range sources {
		if mu, ok := s.(MarksUser); ok && marks != nil {
			mu.UseMarks(marks)
		}
		if x, ok := s.(Exclusiver); ok && x.Exclusive() {
			s = Exclusive(s, leases.Lease(LeaseName(s.Name())))
		}
		out[i] = s
	}
	return out
}

// LeaseName is the name of the lease an exclusive source named name runs
// under ("source/<name>").
func LeaseName(name string) string { return fmt.Sprintf("source/%s", name) }
