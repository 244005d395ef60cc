package sse

import (
	"testing"

	"github.com/switchboard-dev/switchboard/core"
)

func TestEnvelopeID(t *testing.T) {
	cases := []struct {
		env  core.Envelope
		want string
	}{
		{core.Envelope{ID: "1700000000000-0", Type: core.TypeMessage, Room: "r"}, "1700000000000-0"},
		{core.Envelope{Type: core.TypeWelcome}, ""},
		{core.Envelope{ID: `a"b`, Type: core.TypeDirect}, `a"b`},
		{core.Envelope{ID: "a\nb", Type: core.TypeDirect}, ""}, // would break the event framing
	}
	for _, tc := range cases {
		if got := envelopeID(tc.env.Encode()); got != tc.want {
			t.Errorf("envelopeID(%s) = %q, want %q", tc.env.Encode(), got, tc.want)
		}
	}
}
