// Package redis is the Redis Streams broker: every node publishes through
// watermill-redisstream's Publisher into one stream (default
// "switchboard") and reads the whole stream with its own XREAD loop, so a
// node needs one subscription however many rooms it serves, order is the
// stream's total order, and one id positions a client in all its channels.
//
// Message ids are "<epoch>-<ms>-<seq>": the stream entry ID plus an epoch
// stored at "<stream>:epoch" that changes when Redis loses the stream
// (FLUSHALL, a restart without persistence), so a resume across the loss
// reports recovered:false instead of guessing. See docs/brokers.md. The
// id codec (and epoch generation) is internal/ids.
//
// Safe for concurrent use. One reader goroutine per Broker calls the
// delivery callback, in stream order; Publish returns once that reader
// has read the new entry back, so "Publish returned" means "this node has
// delivered it". Healthy reports the reader's view of Redis without I/O.
package redis
