package httpsend

import (
	"testing"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

func TestLimiter(t *testing.T) {
	l := newLimiter(2, 4)
	now := time.Now()
	if !l.allow("u", 3, now) || l.allow("u", 2, now) || !l.allow("u", 1, now) {
		t.Fatal("burst of 4 not honoured (all or none per request)")
	}
	if !l.allow("v", 4, now) {
		t.Fatal("buckets are not per key")
	}
	if l.allow("u", 1, now.Add(100*time.Millisecond)) || !l.allow("u", 1, now.Add(600*time.Millisecond)) {
		t.Fatal("refill at 2/s wrong")
	}
	l.allow("w", 1, now.Add(2*time.Minute)) // sweeps refilled buckets
	if len(l.buckets) != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", len(l.buckets))
	}
	if !newLimiter(-1, 1).allow("x", 1000, now) {
		t.Fatal("negative rate must disable the limit")
	}
}

func TestStatusOf(t *testing.T) {
	cases := map[string]int{
		core.CodeBadRequest: 400, core.CodeReconnectRequired: 400, core.CodeNotJoined: 403,
		core.CodeForbidden: 403, core.CodeBrokerDown: 503, core.CodeUnavailable: 503,
		core.CodeUnconfirmed: 202, core.CodeInternal: 500,
	}
	for code, want := range cases {
		if got := statusOf(errorEnvelope("", code, "m")); got != want {
			t.Errorf("statusOf(%s) = %d, want %d", code, got, want)
		}
	}
	if got := statusOf((&core.Envelope{V: 1, Type: core.TypeAck}).Encode()); got != 200 {
		t.Errorf("ack: %d", got)
	}
}
