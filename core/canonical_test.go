package core

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

var canonicalSeeds = []string{
	`{"v":1,"id":"e-1","type":"message","room":"a","from":"u","ts":1700000000000,"data":{"x":[1,2,"é"]}}`,
	`{"v":1,"type":"direct","to":"bob","ref":"r1","data":"hi"}`,
	`{"v":1,"type":"broadcast"}`,
	`{"v":1,"type":"message","ts":-5,"data":null}`,
	`{"v":1,"type":"m\"x"}`,
	`{"v":1, "type":"message"}`,
	`{"v":10,"type":"message"}`,
	`{"v":1,"type":"message","ts":1e3}`,
	`{"v":1,"type":"message","ts":0123}`,
	`{"v":1,"type":"message","data":{"a":1}x}`,
	`{"v":1,"type":"message","extra":1}`,
	`{"v":1,"type":"message","ts":99999999999999999999}`,
}

// TestDecodeCanonical: what AppendEnvelope writes takes the fast path and
// comes back equal.
func TestDecodeCanonical(t *testing.T) {
	for _, e := range []*Envelope{
		{V: 1, ID: "e-1", Type: TypeMessage, Room: "r", From: "u", TS: 1700000000000, Ref: "x", Data: json.RawMessage(`{"a":"b"}`)},
		{V: 1, Type: TypeDirect, To: "bob", Data: json.RawMessage(`"é"`)},
		{V: 1, Type: TypeBroadcast, TS: -1},
	} {
		got, ok := decodeCanonical(e.Encode())
		if !ok || !reflect.DeepEqual(got, e) {
			t.Errorf("decodeCanonical(%s) = %+v %v, want %+v", e.Encode(), got, ok, e)
		}
	}
}

// TestUnmarshalCompactsData: a foreign producer's data with line breaks
// comes back compact, so it cannot split an envelope across frames.
func TestUnmarshalCompactsData(t *testing.T) {
	e, err := UnmarshalEnvelope([]byte("{\"v\":1,\"type\":\"message\",\"data\":{\"a\":\n1,\t\"b\": \"x y\"}}"))
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Data) != `{"a":1,"b":"x y"}` {
		t.Fatalf("data %q, want it compact", e.Data)
	}
}

// FuzzDecodeCanonical: wherever the fast path accepts, encoding/json
// agrees, field for field.
func FuzzDecodeCanonical(f *testing.F) {
	for _, s := range canonicalSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeCanonical(b)
		if !ok {
			return
		}
		var slow Envelope
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", b, err)
		}
		if bytes.ContainsAny(fast.Data, "\n\r\t") {
			t.Fatalf("fast path kept a line break or tab in data: %q", fast.Data)
		}
		if slow.V != Version {
			t.Fatalf("fast path accepted %q with version %d", b, slow.V)
		}
		if !reflect.DeepEqual(*fast, slow) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", b, *fast, slow)
		}
	})
}

// BenchmarkUnmarshalEnvelope: the canonical fast path against
// encoding/json, on a typical room message.
func BenchmarkUnmarshalEnvelope(b *testing.B) {
	msg := (&Envelope{V: 1, Type: TypeMessage, Room: "lobby", From: "alice", TS: 1700000000000,
		Data: json.RawMessage(`{"text":"hello, world","n":42,"tags":["a","b"]}`)}).Encode()
	b.Run("canonical", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := UnmarshalEnvelope(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var e Envelope
			if err := json.Unmarshal(msg, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
