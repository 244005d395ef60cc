package core_test

import (
	"encoding/json"
	"fmt"

	"github.com/switchboard-dev/switchboard/core"
)

// A client envelope is decoded strictly: data is compacted and fields the
// server owns are dropped. Mistakes come back as a protocol *Error.
func ExampleDecodeEnvelope() {
	env, err := core.DecodeEnvelope([]byte(`{"v":1,"type":"publish","room":"lobby","ref":"7","from":"forged","data":{ "text": "hi" }}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(env.Type, env.Room, env.Ref, env.From == "", string(env.Data))

	_, err = core.DecodeEnvelope([]byte(`{"v":2,"type":"ping"}`))
	fmt.Println(core.ErrorCode(err), "-", err)
	// Output:
	// publish lobby 7 true {"text":"hi"}
	// bad_request - bad_request: field "v": unsupported version 2 (use 1)
}

// The server encodes envelopes with a fixed field order, on one line, so
// several can share a frame separated by '\n'.
func ExampleAppendEnvelope() {
	msg := &core.Envelope{
		ID:   "k3v1-42",
		Type: core.TypeMessage,
		Room: "lobby",
		From: "ada",
		TS:   1700000000000,
		Data: json.RawMessage(`{"text":"line one\nline two"}`),
	}
	buf := core.AppendEnvelope(nil, msg)
	buf = append(buf, '\n')
	buf = core.AppendEnvelope(buf, &core.Envelope{Type: core.TypePong, Ref: "p1"})
	core.SplitFrame(buf, func(line []byte) { fmt.Println(string(line)) })
	// Output:
	// {"v":1,"id":"k3v1-42","type":"message","room":"lobby","from":"ada","ts":1700000000000,"data":{"text":"line one\nline two"}}
	// {"v":1,"type":"pong","ref":"p1"}
}
