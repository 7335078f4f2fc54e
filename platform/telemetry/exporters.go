package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// This file builds the SDK's parts from Config: the resource, the
// sampler, and the span and metric exporters.

func newResource(ctx context.Context, rc ResourceConfig) (*resource.Resource, error) {
	attrs := make([]attribute.KeyValue, 0, 3+len(rc.Attributes))
	keys := make([]string, 0, len(rc.Attributes))
	for k := range rc.Attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch k {
		case "service.name", "service.version", "service.instance.id":
			continue // the dedicated fields win
		}
		attrs = append(attrs, attribute.String(k, rc.Attributes[k]))
	}
	attrs = append(attrs,
		attribute.String("service.name", rc.ServiceName),
		attribute.String("service.instance.id", rc.ServiceInstanceID))
	if rc.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", rc.ServiceVersion))
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

func newSampler(tc TracesConfig) sdktrace.Sampler {
	switch tc.Sampler {
	case SamplerAlways:
		return sdktrace.AlwaysSample()
	case SamplerNever:
		return sdktrace.NeverSample()
	case SamplerRatio:
		return sdktrace.TraceIDRatioBased(tc.Ratio)
	case SamplerParentBasedRatio:
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(tc.Ratio))
	default:
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
}

// newSpanExporter returns the configured exporter, nil for "none".
func newSpanExporter(ctx context.Context, tc TracesConfig) (sdktrace.SpanExporter, error) {
	switch tc.Exporter {
	case ExporterStdout:
		e, err := stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
		if err != nil {
			return nil, fmt.Errorf("telemetry: stdout span exporter: %w", err)
		}
		return e, nil
	case ExporterOTLP:
		o := tc.OTLP
		if o.Protocol == ProtocolGRPC {
			opts := []otlptracegrpc.Option{otlptracegrpc.WithTimeout(o.Timeout)}
			if isURL(o.Endpoint) {
				opts = append(opts, otlptracegrpc.WithEndpointURL(o.Endpoint))
			} else if o.Endpoint != "" {
				opts = append(opts, otlptracegrpc.WithEndpoint(o.Endpoint))
			}
			if o.Insecure {
				opts = append(opts, otlptracegrpc.WithInsecure())
			}
			if len(o.Headers) > 0 {
				opts = append(opts, otlptracegrpc.WithHeaders(o.Headers))
			}
			e, err := otlptracegrpc.New(ctx, opts...)
			if err != nil {
				return nil, fmt.Errorf("telemetry: otlp/grpc span exporter: %w", err)
			}
			return e, nil
		}
		opts := []otlptracehttp.Option{otlptracehttp.WithTimeout(o.Timeout)}
		if isURL(o.Endpoint) {
			opts = append(opts, otlptracehttp.WithEndpointURL(signalURL(o.Endpoint, "/v1/traces")))
		} else if o.Endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpoint(o.Endpoint))
		}
		if o.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(o.Headers))
		}
		e, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp/http span exporter: %w", err)
		}
		return e, nil
	default:
		return nil, nil
	}
}

func newMetricExporter(ctx context.Context, o OTLPConfig) (sdkmetric.Exporter, error) {
	if o.Protocol == ProtocolGRPC {
		opts := []otlpmetricgrpc.Option{otlpmetricgrpc.WithTimeout(o.Timeout)}
		if isURL(o.Endpoint) {
			opts = append(opts, otlpmetricgrpc.WithEndpointURL(o.Endpoint))
		} else if o.Endpoint != "" {
			opts = append(opts, otlpmetricgrpc.WithEndpoint(o.Endpoint))
		}
		if o.Insecure {
			opts = append(opts, otlpmetricgrpc.WithInsecure())
		}
		if len(o.Headers) > 0 {
			opts = append(opts, otlpmetricgrpc.WithHeaders(o.Headers))
		}
		e, err := otlpmetricgrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp/grpc metric exporter: %w", err)
		}
		return e, nil
	}
	opts := []otlpmetrichttp.Option{otlpmetrichttp.WithTimeout(o.Timeout)}
	if isURL(o.Endpoint) {
		opts = append(opts, otlpmetrichttp.WithEndpointURL(signalURL(o.Endpoint, "/v1/metrics")))
	} else if o.Endpoint != "" {
		opts = append(opts, otlpmetrichttp.WithEndpoint(o.Endpoint))
	}
	if o.Insecure {
		opts = append(opts, otlpmetrichttp.WithInsecure())
	}
	if len(o.Headers) > 0 {
		opts = append(opts, otlpmetrichttp.WithHeaders(o.Headers))
	}
	e, err := otlpmetrichttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: otlp/http metric exporter: %w", err)
	}
	return e, nil
}

func isURL(s string) bool { return strings.Contains(s, "://") }

// signalURL appends the signal's standard path (/v1/traces, /v1/metrics)
// to an OTLP/HTTP endpoint URL that names no path of its own, as the
// OTLP exporter configuration does for its base endpoint: a URL with a
// path is used as it is.
func signalURL(endpoint, path string) string {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return endpoint
	}
	u.Path = path
	return u.String()
}
