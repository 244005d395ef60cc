// Package tracing implements core.Tracer on OpenTelemetry and configures
// it from the standard OTEL_* environment variables. Tracing is off unless
// OTEL_TRACES_EXPORTER names an exporter.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-dev/switchboard/core"
)

// ScopeName is the instrumentation scope of Switchboard's spans.
const ScopeName = "github.com/switchboard-dev/switchboard"

// Tracing is a core.Tracer on an OpenTelemetry tracer provider, with W3C
// trace-context propagation (traceparent, tracestate).
type Tracing struct {
	provider trace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	shutdown func(context.Context) error
}

var _ core.Tracer = (*Tracing)(nil)

// New uses provider (for tests, or an application that set up its own).
func New(provider trace.TracerProvider) *Tracing {
	return &Tracing{
		provider: provider,
		tracer:   provider.Tracer(ScopeName),
		prop:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		shutdown: func(context.Context) error { return nil },
	}
}

// ErrConfig is wrapped by Setup's errors about OTEL_* values.
var ErrConfig = errors.New("tracing configuration")

// Setup reads the standard variables through getenv and returns nil (no
// tracing, no cost) unless OTEL_TRACES_EXPORTER is "otlp" or "console":
//
//   - OTEL_TRACES_EXPORTER: otlp (OTLP over HTTP/protobuf), console (spans
//     as JSON lines on stdout), none. Unset: none.
//   - OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
//     OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT, …: read by the
//     OTLP exporter itself. OTEL_EXPORTER_OTLP_PROTOCOL must be
//     http/protobuf (the default here); grpc is not built in.
//   - OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES: the resource
//     (service.name defaults to "switchboard").
//   - OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG: read by the SDK
//     (default: parent-based, always on).
//   - OTEL_SDK_DISABLED=true: off.
//
// Close flushes and stops the exporter.
func Setup(ctx context.Context, getenv func(string) string, stdout io.Writer) (*Tracing, error) {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return nil, nil
	}
	var exp sdktrace.SpanExporter
	switch name := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); name {
	case "", "none":
		return nil, nil
	case "console":
		e, err := stdouttrace.New(stdouttrace.WithWriter(stdout))
		if err != nil {
			return nil, err
		}
		exp = e
	case "otlp":
		proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
		if proto == "" {
			proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
		}
		if proto != "" && proto != "http/protobuf" {
			return nil, fmt.Errorf("%w: OTEL_EXPORTER_OTLP_PROTOCOL=%q is not supported: use http/protobuf (an OpenTelemetry Collector accepts it on port 4318)", ErrConfig, proto)
		}
		e, err := otlptracehttp.New(ctx, otlpOptions(getenv)...)
		if err != nil {
			return nil, fmt.Errorf("%w: OTLP exporter: %w", ErrConfig, err)
		}
		exp = e
	default:
		return nil, fmt.Errorf("%w: OTEL_TRACES_EXPORTER=%q: use otlp, console or none", ErrConfig, name)
	}
	res, err := resource.Merge(
		resource.NewSchemaless(semconv.ServiceName("switchboard")),
		resource.NewSchemaless(fromEnv(getenv)...),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: resource: %w", ErrConfig, err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t := New(tp)
	t.shutdown = tp.Shutdown
	return t, nil
}

// otlpOptions passes the endpoint read through getenv (the exporter
// itself reads only the process environment, where it also finds the
// headers, timeout, compression and certificate): the traces endpoint as
// is, or the base endpoint with /v1/traces.
func otlpOptions(getenv func(string) string) []otlptracehttp.Option {
	var opts []otlptracehttp.Option
	if u := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); u != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(u))
	} else if u := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); u != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(u, "/")+"/v1/traces"))
	}
	return opts
}

// fromEnv reads OTEL_RESOURCE_ATTRIBUTES (k=v,…) and OTEL_SERVICE_NAME
// through getenv, so tests need not touch the process environment.
func fromEnv(getenv func(string) string) []attribute.KeyValue {
	var kv []attribute.KeyValue
	for _, pair := range strings.Split(getenv("OTEL_RESOURCE_ATTRIBUTES"), ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(pair), "="); ok && k != "" {
			kv = append(kv, attribute.String(k, v))
		}
	}
	if name := getenv("OTEL_SERVICE_NAME"); name != "" {
		kv = append(kv, semconv.ServiceName(name))
	}
	return kv
}

// Start begins a span (see core.Tracer).
func (t *Tracing) Start(ctx context.Context, name string, carrier map[string]string, attrs ...string) (context.Context, func(error)) {
	kind := trace.SpanKindInternal
	if !trace.SpanContextFromContext(ctx).IsValid() && carrier != nil {
		ctx = t.prop.Extract(ctx, propagation.MapCarrier(carrier))
		kind = trace.SpanKindConsumer
	}
	kv := make([]attribute.KeyValue, 0, len(attrs)/2)
	for i := 0; i+1 < len(attrs); i += 2 {
		kv = append(kv, attribute.String(attrs[i], attrs[i+1]))
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithAttributes(kv...), trace.WithSpanKind(kind))
	return ctx, func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// Inject writes ctx's span context into carrier (see core.Tracer).
func (t *Tracing) Inject(ctx context.Context, carrier map[string]string) {
	t.prop.Inject(ctx, propagation.MapCarrier(carrier))
}

// InjectHTTP writes ctx's span context into HTTP headers (a webhook
// request), so the receiving backend continues the trace.
func (t *Tracing) InjectHTTP(ctx context.Context, h propagation.HeaderCarrier) {
	t.prop.Inject(ctx, h)
}

// Close flushes pending spans and stops the exporter.
func (t *Tracing) Close(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.shutdown(ctx)
}
