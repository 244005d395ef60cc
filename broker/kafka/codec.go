package kafka

import (
	"errors"
	"slices"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchboard-dev/switchboard/broker"
	"github.com/switchboard-dev/switchboard/broker/engine"
	"github.com/switchboard-dev/switchboard/broker/kafka/internal/ids"
)

// uuidHeader is the record header carrying a Watermill message's UUID in
// watermill-kafka's wire format; every other header is one metadata
// entry, and the record's value is the payload.
const uuidHeader = "_watermill_message_uuid"

// errReservedHeader: a message whose metadata would overwrite the UUID
// header cannot be written in Watermill's format.
var errReservedHeader = errors.New("switchboard/broker/kafka: metadata key " + uuidHeader + " is reserved for the message UUID")

// encode writes msg as a record of topic's one partition in
// watermill-kafka's format (its DefaultMarshaler's): the UUID header
// first, then one header per metadata entry (sorted by key, so equal
// messages encode alike), the payload as the value, and no key.
func encode(topic string, msg *message.Message) (*kgo.Record, error) {
	if _, ok := msg.Metadata[uuidHeader]; ok {
		return nil, errReservedHeader
	}
	keys := make([]string, 0, len(msg.Metadata))
	for k := range msg.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	headers := make([]kgo.RecordHeader, 0, 1+len(keys))
	headers = append(headers, kgo.RecordHeader{Key: uuidHeader, Value: []byte(msg.UUID)})
	for _, k := range keys {
		headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(msg.Metadata[k])})
	}
	return &kgo.Record{Topic: topic, Partition: partition, Value: msg.Payload, Headers: headers}, nil
}

// decode reads a record as watermill-kafka's DefaultMarshaler does: the
// UUID header is the message's UUID (empty without one), every other
// header a metadata entry (the last of a repeated key wins), the value
// the payload. Any record decodes; whether it is a Switchboard message
// is the engine's question (broker.ParseMessage).
func decode(rec *kgo.Record) engine.Record {
	var uuid string
	md := make(message.Metadata, len(rec.Headers))
	size := len(rec.Value)
	for _, h := range rec.Headers {
		size += len(h.Key) + len(h.Value)
		if h.Key == uuidHeader {
			uuid = string(h.Value)
			continue
		}
		md[h.Key] = string(h.Value)
	}
	return engine.Record{Pos: posOf(rec.Offset), Msg: broker.LogMessage(uuid, md, rec.Value), Size: size}
}

// posOf is the engine position of the record at offset (see ids.Lo).
func posOf(offset int64) engine.Pos { return engine.Pos{Lo: ids.Lo(offset)} }

// nextOffset is the offset of the first record positioned after p. ok is
// false for a position that no offset maps to (Hi set, or beyond int64):
// nothing can come after it.
func nextOffset(p engine.Pos) (offset int64, ok bool) {
	if p.Hi != 0 {
		return 0, false
	}
	return ids.Next(p.Lo)
}
