// Package memory is the embedded, single-node broker: Watermill's GoChannel
// for delivery plus a bounded per-channel history ring for resume. It is
// the default when no broker is configured.
//
// Message ids are "<epoch>-<seq>": seq is one sequence for the whole
// broker, so a single id positions a client in every channel at once, and
// epoch changes on every start, so an id from a previous process is
// reported as recovered:false rather than silently mis-resumed. History is
// lost on restart. Safe for concurrent use; Publish is serialized so
// delivery order equals id order.
package memory
