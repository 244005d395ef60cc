package core

import "context"

// Tracer reports spans for the message path: a publish, the broker's
// delivery of it to each node, and the fan-out there. Core stays free of
// any tracing library; edge/tracing implements Tracer on OpenTelemetry.
// With Config.Tracer nil, tracing costs nothing.
//
// The span context crosses the broker in Envelope.Trace (W3C trace
// context fields such as "traceparent"), which brokers carry as message
// metadata, never in the envelope's JSON.
type Tracer interface {
	// Start begins a span named name: a child of ctx's span, or, when ctx
	// has none and carrier holds one, of that remote parent. attrs are
	// key, value pairs. The returned function ends the span, recording
	// err when not nil.
	Start(ctx context.Context, name string, carrier map[string]string, attrs ...string) (context.Context, func(err error))

	// Inject writes ctx's span context into carrier.
	Inject(ctx context.Context, carrier map[string]string)
}
