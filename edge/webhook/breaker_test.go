package webhook

import (
	"testing"
	"time"
)

// fakeClock is a settable clock for breakers.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestBreaker(t *testing.T) {
	// Steps: "s"/"f" an admitted attempt succeeds/fails, "a" is abandoned,
	// "x" expects a refusal, "w" waits out the cooldown, "T" takes the
	// half-open trial and leaves it in flight, "Ts"/"Tf" report it.
	for _, tc := range []struct {
		name  string
		steps []string
		want  breakerState
	}{
		{"stays closed below threshold", []string{"f", "f", "s", "f", "f"}, stateClosed},
		{"opens at threshold", []string{"f", "f", "f", "x"}, stateOpen},
		{"refuses until the cooldown", []string{"f", "f", "f", "x", "x"}, stateOpen},
		{"trial success closes", []string{"f", "f", "f", "w", "s", "s"}, stateClosed},
		{"trial failure reopens", []string{"f", "f", "f", "w", "f", "x"}, stateOpen},
		{"one trial at a time", []string{"f", "f", "f", "w", "T", "x", "Ts", "s"}, stateClosed},
		{"abandoned trial frees the slot", []string{"f", "f", "f", "w", "a", "Tf", "x"}, stateOpen},
		{"abandon is not a failure", []string{"f", "f", "a", "a", "a", "s"}, stateClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(0, 0)}
			var changes []bool
			b := &breaker{threshold: 3, cooldown: time.Second, now: clk.now, onChange: func(open bool) { changes = append(changes, open) }}
			var trial ticket
			for i, s := range tc.steps {
				switch s {
				case "w":
					clk.advance(time.Second)
				case "x":
					if _, ok := b.allow(); ok {
						t.Fatalf("step %d: allowed, want refused", i)
					}
				case "T", "Tf":
					if s == "T" || trial == (ticket{}) {
						var ok bool
						if trial, ok = b.allow(); !ok || !trial.trial {
							t.Fatalf("step %d: no trial (%v %v)", i, trial, ok)
						}
					}
					if s == "Tf" {
						b.done(trial, failed)
					}
				case "Ts":
					b.done(trial, succeeded)
				default:
					tk, ok := b.allow()
					if !ok {
						t.Fatalf("step %d: refused, want allowed (state %s)", i, b.current())
					}
					b.done(tk, map[string]outcome{"s": succeeded, "f": failed, "a": abandoned}[s])
				}
			}
			if got := b.current(); got != tc.want {
				t.Fatalf("state = %s, want %s", got, tc.want)
			}
			for i := 1; i < len(changes); i++ {
				if changes[i] == changes[i-1] {
					t.Fatalf("onChange reported %v twice in a row: %v", changes[i], changes)
				}
			}
		})
	}
}

func TestNilBreakerAllowsEverything(t *testing.T) {
	var b *breaker
	tk, ok := b.allow()
	b.done(tk, failed)
	if !ok || b.current() != stateClosed {
		t.Fatal("nil breaker refused")
	}
}
