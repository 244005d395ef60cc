// Package kafka is the Kafka broker: every node publishes through
// watermill-kafka's Publisher (a Sarama SyncProducer, idempotent) into one
// topic with one partition (default "switchboard") and reads the whole
// partition with its own franz-go consumer from an exact offset, with no
// consumer group, so nodes never compete, a node needs one subscription
// however many rooms it serves, order is the partition's total order, and
// one id positions a client in all its channels. Records keep watermill's
// wire format (watermill-kafka's marshaler both ways).
//
// Message ids are "<epoch>-<offset>": the record's offset plus the topic's
// Kafka topic ID, which changes when the topic is deleted and recreated,
// so a resume across that reports recovered:false instead of guessing.
// Retention is the topic's retention.ms; a since older than the log start
// is recovered:false. See docs/brokers.md. The id codec is internal/ids.
//
// Safe for concurrent use. One reader goroutine per Broker calls the
// delivery callback, in offset order; Publish returns once that reader has
// read the record back, so "Publish returned" means "this node has
// delivered it". Healthy reports the reader's view of Kafka without I/O.
package kafka
