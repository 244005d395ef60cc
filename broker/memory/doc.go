// Package memory is the embedded, single-node broker: Watermill's GoChannel
// for delivery plus a bounded per-channel history ring for resume. It is
// the default when no broker is configured.
//
// Message ids are "<epoch>-<seq>": seq is one sequence for the whole
// broker, so a single id positions a client in every channel at once, and
// epoch changes on every start, so an id from a previous process is
// reported as recovered:false rather than silently mis-resumed. History is
// lost on restart. History is bounded per channel (HistorySize), in time
// (HistoryTTL) and in total bytes (HistoryMaxBytes, evicting the least
// recently published channels first). Healthy is nil until Close: there
// is no backend to lose.
//
// Safe for concurrent use. Publish is serialized only until its message is
// in the node's bounded delivery buffer, so delivery order equals id order
// and a slow fan-out delays publishers only once the buffer is full;
// Publish may return before the delivery callback runs. History waits for
// the delivery of the newest message it returns, never holding the lock
// Publish needs.
package memory
