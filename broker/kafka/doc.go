// Package kafka is the Kafka driver of the log engine (broker/engine):
// one topic with one partition (default "switchboard") holds every
// channel; New returns the engine over it. Every node reads the whole
// partition with its own franz-go consumer from an exact offset, with no
// consumer group, so nodes never compete and one id positions a client
// in all its channels. Records keep watermill-kafka's wire format (a
// _watermill_message_uuid header, one header per metadata entry, the
// payload as the value), so a Watermill application can publish into
// the topic and read it.
//
// A record at offset o is at position o+1; the epoch is the topic's
// Kafka topic ID, which changes when the topic is deleted and recreated,
// so a resume across that reports recovered:false instead of guessing.
// Retention is the topic's retention.ms. Publishes go through one
// idempotent producer (a retried produce never appends twice); Kafka
// keeps no idempotency keys, so the engine's reader drops a repeated key.
// See docs/brokers.md.
//
// The driver keeps four franz-go clients apart: the reader's consumer,
// history's fetches, the producer, and Head's metadata and offsets. The
// engine calls Read from its reader, Range from History calls, Append
// from its committer (one at a time); the driver needs no more locking
// than that, and Close interrupts them all.
package kafka
