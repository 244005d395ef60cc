package broker_test

import (
	"maps"
	"testing"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/core"
)

// TestTraceRidesInMetadata: an envelope's trace context crosses the broker
// as message metadata and never appears in the payload clients receive.
func TestTraceRidesInMetadata(t *testing.T) {
	trace := map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "k=v"}
	env := &core.Envelope{V: 1, ID: "e-1", Type: core.TypeMessage, Room: "r", Data: []byte(`1`), Trace: trace}
	msg := broker.NewMessage(core.RoomChannel("r"), env)
	if got := string(msg.Payload); got != string(env.Encode()) || len(env.Encode()) != len(`{"v":1,"id":"e-1","type":"message","room":"r","data":1}`) {
		t.Fatalf("payload %s carries more than the envelope", got)
	}
	d, err := broker.ParseMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(d.Envelope.Trace, trace) {
		t.Fatalf("trace after the broker = %v, want %v", d.Envelope.Trace, trace)
	}
	plain, err := broker.ParseMessage(broker.NewMessage("room:r", &core.Envelope{V: 1, ID: "e-2", Type: core.TypeMessage, Room: "r"}))
	if err != nil || plain.Envelope.Trace != nil {
		t.Fatalf("untraced message: trace %v, err %v", plain.Envelope.Trace, err)
	}
}
