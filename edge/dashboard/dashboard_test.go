package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/broker/memory"
	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/core/coretest"
)

// fasthttp's clock goroutine (started by the first fiber request in
// TestRequireTokenLevels) runs for the life of the process.
func TestMain(m *testing.M) { coretest.VerifyNone(m, "fasthttp.updateServerDate") }

func newDashboard(t *testing.T) *Dashboard {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(bytes.NewBuffer(nil), nil))
	b, err := memory.New(memory.Config{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	n, err := core.NewNode(core.Config{}, b, quiet)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Node: n, Interval: time.Hour, Logger: quiet}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Error(err)
		}
		if err := n.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return d
}

func deliver(d *Dashboard, data string) {
	d.received(core.Delivery{Channel: Channel, Envelope: &core.Envelope{V: 1, Type: core.TypeMessage, Data: json.RawMessage(data)}})
}

// TestReceivedKeepsOnlyValidSamples: samples from the broker are checked
// and re-encoded before a page sees them; wants start sampling.
func TestReceivedKeepsOnlyValidSamples(t *testing.T) {
	d := newDashboard(t)
	deliver(d, `{"kind":"sample","node":"<img src=x onerror=alert(1)>","at":1}`)
	deliver(d, `{"kind":"sample","node":"","at":1}`)
	deliver(d, `{"kind":"other","node":"N1","at":1}`)
	deliver(d, `not json`)
	deliver(d, `{"kind":"sample","node":"N1","at":1,"queued":"<b>x</b>"}`) // a string where a number goes
	if len(d.samples) != 0 {
		t.Fatalf("kept %v from invalid messages", d.samples)
	}
	deliver(d, `{"kind":"sample","node":"N1","at":5,"queued":3,"extra":"<script>"}`)
	got := d.samples["N1"]
	if len(got) != 1 || bytes.Contains(got[0], []byte("extra")) || bytes.Contains(got[0], []byte("kind")) || !bytes.Contains(got[0], []byte(`"queued":3`)) {
		t.Fatalf("kept %s, want the typed sample only", got)
	}
	if d.wantedUntil.Load() != 0 {
		t.Fatal("sampling wanted before anyone asked")
	}
	deliver(d, `{"kind":"want","node":"N2"}`)
	if until := time.Unix(0, d.wantedUntil.Load()); time.Until(until) < wantTTL-time.Second {
		t.Fatalf("a want keeps sampling until %v, want about %v from now", until, wantTTL)
	}
}

// TestNodesAreForgotten: a node silent for nodeTTL is dropped, and at most
// maxNodes are kept.
func TestNodesAreForgotten(t *testing.T) {
	d := newDashboard(t)
	deliver(d, `{"kind":"sample","node":"OLD","at":1}`)
	d.mu.Lock()
	d.seen["OLD"] = time.Now().Add(-nodeTTL - time.Second)
	d.mu.Unlock()
	deliver(d, `{"kind":"sample","node":"NEW","at":1}`)
	if _, ok := d.samples["OLD"]; ok || len(d.samples["NEW"]) != 1 {
		t.Fatalf("samples after a node went silent: %v", d.samples)
	}
	for i := range maxNodes + 10 {
		deliver(d, `{"kind":"sample","node":"N`+string(rune('A'+i%26))+string(rune('A'+i/26))+`","at":1}`)
	}
	if len(d.samples) != maxNodes {
		t.Fatalf("%d nodes kept, want at most %d", len(d.samples), maxNodes)
	}
}

func TestRecentKeepsMessagesNotAttributes(t *testing.T) {
	r := NewRecent(nil)
	log := slog.New(r)
	log.Info("not kept")
	log.With("user", "alice").Warn("first", "remote", "10.0.0.1")
	log.Error("second")
	got := r.Last(5)
	if len(got) != 2 || got[0].Msg != "second" || got[1].Msg != "first" {
		t.Fatalf("Last = %+v", got)
	}
	b, _ := json.Marshal(got)
	if bytes.Contains(b, []byte("alice")) || bytes.Contains(b, []byte("10.0.0.1")) {
		t.Fatalf("entries carry attributes: %s", b)
	}
}
