package telemetry

import (
	"errors"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/plba/plba/platform/config"
)

// ConfigSection is the name of the configuration section Config is read
// from.
const ConfigSection = "telemetry"

// Trace exporters (TracesConfig.Exporter).
const (
	// ExporterNone exports no spans. Trace context is still created and
	// propagated through task headers (so log lines carry trace ids), but
	// nothing is sampled: the sampler is forced to "never".
	ExporterNone = "none"
	// ExporterStdout writes spans as JSON to standard output (development).
	ExporterStdout = "stdout"
	// ExporterOTLP sends spans to an OTLP collector (see OTLPConfig).
	ExporterOTLP = "otlp"
)

// Samplers (TracesConfig.Sampler).
const (
	SamplerAlways            = "always"
	SamplerNever             = "never"
	SamplerRatio             = "ratio"
	SamplerParentBasedAlways = "parentbased_always"
	SamplerParentBasedRatio  = "parentbased_ratio"
)

// OTLP protocols (OTLPConfig.Protocol).
const (
	ProtocolHTTP = "http"
	ProtocolGRPC = "grpc"
)

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("telemetry: invalid config")

// Config is the "telemetry" configuration section. The zero value, after
// WithDefaults, means: no span export (trace context is still propagated),
// metrics on and served for Prometheus at /metrics, service name "plba".
type Config struct {
	// Traces configures spans.
	Traces TracesConfig `koanf:"traces"`
	// Metrics configures instruments and their readers.
	Metrics MetricsConfig `koanf:"metrics"`
	// Resource describes this process on every span and metric.
	Resource ResourceConfig `koanf:"resource"`
}

// TracesConfig configures the tracer provider.
type TracesConfig struct {
	// Exporter is none (default), stdout or otlp.
	Exporter string `koanf:"exporter"`
	// OTLP configures the otlp exporter.
	OTLP OTLPConfig `koanf:"otlp"`
	// Sampler is always, never, ratio, parentbased_always (default) or
	// parentbased_ratio. The parent-based samplers follow the sampling
	// decision of the incoming trace context (a task's producer) and apply
	// the root sampler only to new traces.
	Sampler string `koanf:"sampler"`
	// Ratio is the fraction of new traces sampled by the ratio samplers,
	// in [0, 1]. Default 0 with a ratio sampler means nothing is sampled;
	// ignored by the other samplers.
	Ratio float64 `koanf:"ratio"`
	// BatchTimeout is the longest a finished span waits in the batch span
	// processor before export. Default 5s.
	BatchTimeout time.Duration `koanf:"batch_timeout"`
	// MaxQueueSize is the batch span processor's buffer; spans beyond it
	// are dropped (never blocking a task) and counted on
	// plba.telemetry.spans_dropped (reason queue_full). Default 2048; at
	// most MaxSpanQueueSize.
	MaxQueueSize int `koanf:"max_queue_size"`
	// MaxExportBatchSize is the most spans sent in one export. Default 512.
	MaxExportBatchSize int `koanf:"max_export_batch_size"`
}

// OTLPConfig configures an OTLP exporter (traces, or metrics when
// MetricsConfig.OTLP.Enabled).
type OTLPConfig struct {
	// Protocol is http (default, port 4318) or grpc (port 4317).
	Protocol string `koanf:"protocol"`
	// Endpoint is host:port, or a URL (http://collector:4318) whose scheme
	// also decides TLS. Over http, a URL without a path gets the signal's
	// standard one (/v1/traces, /v1/metrics); a URL with a path is used as
	// it is. Empty means the exporter's default (localhost, or the
	// OTEL_EXPORTER_OTLP_ENDPOINT environment variable).
	Endpoint string `koanf:"endpoint" secret:"userinfo"`
	// Headers are sent with every export (for example an API key).
	Headers map[string]string `koanf:"headers" secret:"true"`
	// Insecure disables TLS for a host:port endpoint.
	Insecure bool `koanf:"insecure"`
	// Timeout bounds one export. Default 10s.
	Timeout time.Duration `koanf:"timeout"`
}

// MetricsConfig configures the meter provider.
type MetricsConfig struct {
	// Enabled turns metrics on. Default (nil) true.
	Enabled *bool `koanf:"enabled"`
	// Prometheus exposes the metrics for scraping through Telemetry's
	// MetricsHandler (the host mounts it at /metrics). Default (nil) true.
	Prometheus *bool `koanf:"prometheus"`
	// OTLP pushes metrics to an OTLP collector as well, when enabled.
	OTLP MetricsOTLPConfig `koanf:"otlp"`
	// Runtime adds the Go runtime metrics (go.memory.*, go.goroutine.count,
	// ...). Default (nil) true.
	Runtime *bool `koanf:"runtime"`
}

// MetricsOTLPConfig configures pushing metrics over OTLP.
type MetricsOTLPConfig struct {
	OTLPConfig `koanf:",squash"`
	// Enabled turns the push on. Default false.
	Enabled bool `koanf:"enabled"`
	// Interval is the push period. Default 30s, at least 100ms.
	Interval time.Duration `koanf:"interval"`
}

// ResourceConfig names this process.
type ResourceConfig struct {
	// ServiceName is service.name. Default "plba".
	ServiceName string `koanf:"service_name"`
	// ServiceVersion is service.version. Default empty (omitted).
	ServiceVersion string `koanf:"service_version"`
	// ServiceInstanceID is service.instance.id. Empty (the default):
	// "<hostname>-<pid>" of the running process, filled by New and not
	// by WithDefaults, so that the effective configuration, and its
	// digest, is the same in every process that loads the same settings.
	ServiceInstanceID string `koanf:"service_instance_id"`
	// Attributes are extra resource attributes (deployment.environment.name,
	// ...). They cannot override the three above.
	Attributes map[string]string `koanf:"attributes"`
}

// Bool returns a pointer to b, for the optional switches of MetricsConfig.
func Bool(b bool) *bool { return &b }

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// MetricsEnabled reports whether metrics are on.
func (c MetricsConfig) MetricsEnabled() bool { return boolOr(c.Enabled, true) }

// PrometheusEnabled reports whether the Prometheus handler is served.
func (c MetricsConfig) PrometheusEnabled() bool {
	return c.MetricsEnabled() && boolOr(c.Prometheus, true)
}

// RuntimeEnabled reports whether Go runtime metrics are collected.
func (c MetricsConfig) RuntimeEnabled() bool {
	return c.MetricsEnabled() && boolOr(c.Runtime, true)
}

// DefaultConfig returns the documented defaults, for declaring the
// "telemetry" section: no span export (trace context still propagates),
// parent-based sampling, metrics with the Prometheus exporter and the Go
// runtime metrics, service name "plba". ServiceInstanceID stays empty: New
// fills it with "<hostname>-<pid>" of the running process.
func DefaultConfig() Config {
	c := Config{Metrics: MetricsConfig{Enabled: Bool(true), Prometheus: Bool(true), Runtime: Bool(true)}}
	return c.WithDefaults()
}

// WithDefaults returns c with every unset field set to its documented
// default.
func (c Config) WithDefaults() Config {
	t := &c.Traces
	if t.Exporter == "" {
		t.Exporter = ExporterNone
	}
	if t.Sampler == "" {
		t.Sampler = SamplerParentBasedAlways
	}
	if t.BatchTimeout == 0 {
		t.BatchTimeout = 5 * time.Second
	}
	if t.MaxQueueSize == 0 {
		t.MaxQueueSize = 2048
	}
	if t.MaxExportBatchSize == 0 {
		t.MaxExportBatchSize = 512
	}
	t.OTLP = t.OTLP.withDefaults()
	c.Metrics.OTLP.OTLPConfig = c.Metrics.OTLP.OTLPConfig.withDefaults()
	if c.Metrics.OTLP.Interval == 0 {
		c.Metrics.OTLP.Interval = 30 * time.Second
	}
	r := &c.Resource
	if r.ServiceName == "" {
		r.ServiceName = "plba"
	}
	return c
}

// instanceID is the default service.instance.id: "<hostname>-<pid>" of
// the running process.
func instanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}

func (o OTLPConfig) withDefaults() OTLPConfig {
	if o.Protocol == "" {
		o.Protocol = ProtocolHTTP
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	return o
}

// MinExportInterval is the shortest metrics.otlp.interval Validate
// accepts.
const MinExportInterval = 100 * time.Millisecond

// MaxSpanQueueSize bounds TracesConfig.MaxQueueSize: the batch span
// processor makes its buffer of that size at start (a size of 1<<62
// panicked there, 4e9 ran out of memory).
const MaxSpanQueueSize = 1_000_000

// Validate reports the first invalid field, naming its path (for example
// "traces.sampler"). Unset fields are judged by their defaults, so the
// zero Config is valid.
func (c Config) Validate() error {
	c = c.WithDefaults()
	t := c.Traces
	switch t.Exporter {
	case ExporterNone, ExporterStdout:
	case ExporterOTLP:
		if err := t.OTLP.validate("traces.otlp"); err != nil {
			return err
		}
	default:
		return invalid("traces.exporter", "%q is not one of none, stdout, otlp", t.Exporter)
	}
	switch t.Sampler {
	case SamplerAlways, SamplerNever, SamplerParentBasedAlways:
	case SamplerRatio, SamplerParentBasedRatio:
	default:
		return invalid("traces.sampler", "%q is not one of always, never, ratio, parentbased_always, parentbased_ratio", t.Sampler)
	}
	if t.Ratio < 0 || t.Ratio > 1 || t.Ratio != t.Ratio {
		return invalid("traces.ratio", "%v is outside [0, 1]", t.Ratio)
	}
	if t.BatchTimeout < 0 {
		return invalid("traces.batch_timeout", "negative duration %v", t.BatchTimeout)
	}
	if t.MaxQueueSize < 0 || t.MaxExportBatchSize < 0 {
		return invalid("traces.max_queue_size", "negative sizes (%d, %d)", t.MaxQueueSize, t.MaxExportBatchSize)
	}
	if t.MaxQueueSize > MaxSpanQueueSize {
		return invalid("traces.max_queue_size", "%d: want at most %d", t.MaxQueueSize, MaxSpanQueueSize)
	}
	if t.MaxExportBatchSize > t.MaxQueueSize {
		return invalid("traces.max_export_batch_size", "%d exceeds max_queue_size %d", t.MaxExportBatchSize, t.MaxQueueSize)
	}
	if c.Metrics.OTLP.Enabled {
		if err := c.Metrics.OTLP.validate("metrics.otlp"); err != nil {
			return err
		}
		if c.Metrics.OTLP.Interval < MinExportInterval {
			// Every nanosecond an export: the exporter runs back to back.
			return invalid("metrics.otlp.interval", "want at least %v, got %v", MinExportInterval, c.Metrics.OTLP.Interval)
		}
	}
	if strings.TrimSpace(c.Resource.ServiceName) == "" {
		return invalid("resource.service_name", "empty")
	}
	for k := range c.Resource.Attributes {
		if strings.TrimSpace(k) == "" {
			return invalid("resource.attributes", "empty attribute name")
		}
	}
	return nil
}

func (o OTLPConfig) validate(path string) error {
	switch o.Protocol {
	case ProtocolHTTP, ProtocolGRPC:
	default:
		return invalid(path+".protocol", "%q is not one of http, grpc", o.Protocol)
	}
	if o.Timeout < 0 {
		return invalid(path+".timeout", "negative duration %v", o.Timeout)
	}
	if strings.Contains(o.Endpoint, "://") {
		u, err := url.Parse(o.Endpoint)
		if err != nil {
			// url.Error quotes the URL, user information included.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return invalid(path+".endpoint", "%s is not a URL: %v", config.RedactUserinfo(o.Endpoint), err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return invalid(path+".endpoint", "scheme %q is not http or https", u.Scheme)
		}
		if u.Host == "" {
			return invalid(path+".endpoint", "%q has no host", config.RedactUserinfo(o.Endpoint))
		}
	}
	return nil
}

func invalid(path, format string, args ...any) error {
	return config.InvalidAs(ErrInvalidConfig, path, format, args...)
}
