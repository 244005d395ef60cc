package test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchboard-dev/switchboard/broker/redis/redistest"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/tracing"
)

// attr returns a span attribute's string value.
func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// TestTracingAcrossNodes: with tracing on, a publish on node A is one
// trace through Redis to the delivery on node B (the delivery span is a
// child of the publish span, carried in the broker message's metadata),
// and a connect webhook call is a span whose traceparent the backend
// receives.
func TestTracingAcrossNodes(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tr := tracing.New(tp)
	parents := make(chan string, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		parents <- r.Header.Get("traceparent")
		_, _ = io.WriteString(w, `{"accept":true}`)
	}))
	defer hook.Close()
	rs := redistest.Start(t)
	mod := func(c *config.Config) {
		c.Broker.Name, c.Broker.URL, c.Tracer = "redis", rs.URL, tr
		c.Dashboard = false
	}
	a := startEdge(t, func(c *config.Config) {
		mod(c)
		c.Webhooks.ConnectURL, c.Webhooks.Secret = hook.URL, []byte("tracing-test-secret-0123")
	})
	b := startEdge(t, mod)

	sub, _ := connect(t, b.url(q("user", "s", "rooms", "r")))
	pub, _ := connect(t, a.url(q("user", "p", "rooms", "r")))
	traceparent := <-parents
	pub.send(`{"v":1,"type":"publish","room":"r","data":1,"ref":"x"}`)
	pub.ackAnd(core.TypeMessage)
	sub.expect(core.TypeMessage)

	var publish, deliver, webhook *tracetest.SpanStub
	eventually(t, "the publish, delivery and webhook spans", func() bool {
		publish, deliver, webhook = nil, nil, nil
		spans := exp.GetSpans()
		for i := range spans {
			s := &spans[i]
			switch {
			case s.Name == "switchboard.publish" && attr(*s, "switchboard.channel") == "room:r":
				publish = s
			case s.Name == "switchboard.deliver" && attr(*s, "switchboard.channel") == "room:r" && attr(*s, "switchboard.node") == b.srv.Node().ID():
				deliver = s
			case s.Name == "switchboard.webhook" && attr(*s, "switchboard.route") == "connect":
				webhook = s
			}
		}
		return publish != nil && deliver != nil && webhook != nil
	})
	if deliver.Parent.TraceID() != publish.SpanContext.TraceID() || deliver.Parent.SpanID() != publish.SpanContext.SpanID() || !deliver.Parent.IsRemote() {
		t.Errorf("delivery on node B has parent %v, want the publish span %v on node A", deliver.Parent, publish.SpanContext)
	}
	if !strings.Contains(traceparent, webhook.SpanContext.TraceID().String()) || !strings.Contains(traceparent, webhook.SpanContext.SpanID().String()) {
		t.Errorf("webhook backend got traceparent %q, want the webhook span %v", traceparent, webhook.SpanContext)
	}
}
