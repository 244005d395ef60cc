// Package broker carries Switchboard envelopes over Watermill, the
// plug-in seam for every message bus Switchboard runs on. It owns the
// mapping between core.Envelope and message.Message (the channel travels in
// metadata, the envelope JSON is the payload) and the node-level consumer
// that turns one Watermill subscription into core.Delivery callbacks.
//
// Drivers live in sub-packages (memory is the embedded default) and each
// implements core.Broker; brokertest is the conformance suite all of them
// pass. Everything here is safe for concurrent use.
package broker
