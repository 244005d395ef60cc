// Package longpoll serves Switchboard over HTTP long-polling. New returns
// the GET /poll handler for Fiber v2, NewHandler the same for net/http
// (one shared handler, two thin front ends); the client sends with POST
// /send (see adapters/httpsend).
//
// Wire format: GET /poll?rooms=a,b&cursor=<id>&wait=25s answers
// {"messages":[envelopes…],"cursor":"<id>","recovered":true|false}. The
// cursor is the id of the last message the client received; it is all the
// state there is, so any edge node can answer the next poll (no sticky
// sessions). A poll without a cursor starts at the broker's head (see
// core.Broker.Head): it waits for the first new message, and with none it
// answers the head as its cursor, so the next poll misses nothing
// published in between (with a broker whose Head returns "" it waits "from
// now" and answers an empty cursor). When the broker cannot give its
// head or the history after the cursor, the poll answers 503
// broker_unavailable and no cursor: the client retries with the same one.
// recovered:false means the log could not give everything after the
// cursor (beyond retention, another epoch, unparseable); the cursor of
// such an answer with no message is the head, so nothing after it is
// lost. An answer carries at most BatchLimit messages, oldest first, read
// as one page (core.ConnectRequest.ReplayPage): a client far behind pages
// through the log, each poll costing about a page, and its cursor is
// where the page's read ended.
//
// Concurrency: each poll is a short-lived core.Session (Unidirectional,
// no Pinger) accepted with Since=cursor and ReplayPage=BatchLimit, so
// core's replay and resume-seam logic applies (and no live message
// follows a page with more behind it). Its writer goroutine appends
// copies of the frames to a collector; the handler goroutine waits for
// the first message (not at all after a page with more behind it, or a
// gap), the wait
// to end, or the server to shut down, then closes the session (1000,
// flushing its queue, nothing sent to the client) and answers once the
// session is done. The collector stops decoding once it holds BatchLimit
// messages: what core queues after them is for the next poll. Fiber
// cannot see a client that gives up, so every poll runs to its own wait:
// keep MaxWait moderate. net/http sees it, and the poll ends at once.
package longpoll
