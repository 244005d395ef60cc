package redis

import (
	"maps"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/vmihailenco/msgpack"
)

// TestDecodeMetadata: what watermill-redisstream writes decodes directly.
func TestDecodeMetadata(t *testing.T) {
	long := string(make([]byte, 300))
	for _, md := range []message.Metadata{
		{"switchboard_channel": "room:a"},
		{"switchboard_channel": "user:bob", "switchboard_key": "k", "switchboard_digest": "d", "switchboard_trace_traceparent": "00-x-y-01"},
		{"k": long},
		{},
	} {
		b, err := msgpack.Marshal(md)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeMetadata(b)
		if !ok || !maps.Equal(got, md) {
			t.Errorf("decodeMetadata(%x) = %v %v, want %v", b, got, ok, md)
		}
	}
}

// TestAppendMetadata: what appendMetadata writes, msgpack (and so
// watermill-redisstream's unmarshaller) and decodeMetadata read back.
func TestAppendMetadata(t *testing.T) {
	long := string(make([]byte, 300))
	huge := string(make([]byte, 70000))
	many := message.Metadata{}
	for i := range 20 {
		many[string(rune('a'+i))] = "v"
	}
	for _, md := range []message.Metadata{
		{"switchboard_channel": "room:a"},
		{"k": long, "l": huge, "": ""},
		many,
		{},
	} {
		b := appendMetadata(nil, md)
		want := make(message.Metadata)
		if err := msgpack.Unmarshal(b, &want); err != nil || !maps.Equal(want, md) {
			t.Errorf("msgpack reads %v (%v), want %v", want, err, md)
		}
		fits := true // decodeMetadata reads strings up to 16-bit lengths
		for k, v := range md {
			fits = fits && len(k) < 1<<16 && len(v) < 1<<16
		}
		if got, ok := decodeMetadata(b); fits && (!ok || !maps.Equal(got, md)) {
			t.Errorf("decodeMetadata reads %v %v, want %v", got, ok, md)
		}
	}
}

// FuzzDecodeMetadata: wherever the direct path accepts, msgpack agrees.
func FuzzDecodeMetadata(f *testing.F) {
	for _, md := range []message.Metadata{{"switchboard_channel": "room:a"}, {"a": "b", "c": ""}, {}} {
		b, _ := msgpack.Marshal(md)
		f.Add(b)
	}
	f.Add([]byte{0x81, 0xa1, 'a', 0xc0})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := decodeMetadata(b)
		if !ok {
			return
		}
		want := make(message.Metadata)
		if err := msgpack.Unmarshal(b, &want); err != nil {
			t.Fatalf("direct path accepted %x, msgpack refuses it: %v", b, err)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("%x: direct %v, msgpack %v", b, got, want)
		}
	})
}
