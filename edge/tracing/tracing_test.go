package tracing_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/switchboard-dev/switchboard/edge/tracing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestSetupOffByDefault(t *testing.T) {
	for _, m := range []map[string]string{
		{},
		{"OTEL_TRACES_EXPORTER": "none"},
		{"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"},
	} {
		tr, err := tracing.Setup(context.Background(), env(m), io.Discard)
		if err != nil || tr != nil {
			t.Fatalf("Setup(%v) = %v, %v; want nil, nil", m, tr, err)
		}
	}
}

func TestSetupRejectsWhatItCannotDo(t *testing.T) {
	for _, m := range []map[string]string{
		{"OTEL_TRACES_EXPORTER": "zipkin"},
		{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
		{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
	} {
		_, err := tracing.Setup(context.Background(), env(m), io.Discard)
		if !errors.Is(err, tracing.ErrConfig) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("Setup(%v) = %v; want one line wrapping ErrConfig", m, err)
		}
	}
}

// TestConsoleExporter: console prints the spans, with the service name
// from OTEL_SERVICE_NAME, when the tracer is closed.
func TestConsoleExporter(t *testing.T) {
	var out bytes.Buffer
	tr, err := tracing.Setup(context.Background(), env(map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "edge-7"}), &out)
	if err != nil || tr == nil {
		t.Fatalf("Setup: %v %v", tr, err)
	}
	_, end := tr.Start(context.Background(), "switchboard.publish", nil, "switchboard.channel", "room:r")
	end(nil)
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"Name":"switchboard.publish"`, `"room:r"`, `"edge-7"`} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("console output lacks %s:\n%s", want, out.String())
		}
	}
}

// TestOTLPExporter: otlp posts protobuf spans to OTEL_EXPORTER_OTLP_ENDPOINT.
func TestOTLPExporter(t *testing.T) {
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" && r.Header.Get("Content-Type") == "application/x-protobuf" && bytes.Contains(body, []byte("switchboard.deliver")) {
			posts.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	tr, err := tracing.Setup(context.Background(), env(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL}), io.Discard)
	if err != nil || tr == nil {
		t.Fatalf("Setup: %v %v", tr, err)
	}
	_, end := tr.Start(context.Background(), "switchboard.deliver", nil)
	end(nil)
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if posts.Load() != 1 {
		t.Fatalf("%d OTLP posts with the span, want 1", posts.Load())
	}
}

// TestPropagation: a span started from a carrier continues the trace that
// Inject wrote into it.
func TestPropagation(t *testing.T) {
	var out bytes.Buffer
	tr, _ := tracing.Setup(context.Background(), env(map[string]string{"OTEL_TRACES_EXPORTER": "console"}), &out)
	ctx, end := tr.Start(context.Background(), "parent", nil)
	carrier := map[string]string{}
	tr.Inject(ctx, carrier)
	end(nil)
	tp := carrier["traceparent"]
	if len(tp) != 55 {
		t.Fatalf("traceparent %q", tp)
	}
	_, endChild := tr.Start(context.Background(), "child", carrier)
	endChild(errors.New("boom"))
	_ = tr.Close(context.Background())
	traceID := tp[3:35]
	if strings.Count(out.String(), traceID) < 2 || !strings.Contains(out.String(), "boom") {
		t.Fatalf("child not in the parent's trace %s, or its error not recorded:\n%s", traceID, out.String())
	}
}
