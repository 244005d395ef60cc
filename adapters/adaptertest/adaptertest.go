package adaptertest

import (
	"context"
	"errors"
	"testing"

	"github.com/switchboard-dev/switchboard/core"
)

// Harness connects the suite to one adapter.
type Harness struct {
	// Features describes what the transport can do.
	Features Features

	// Start mounts the adapter on srv.Node behind a server listening on
	// 127.0.0.1:0, and returns a Dialer for it. The adapter hands the
	// credentials the client presented (ConnectOpts.Token and User) to
	// the node, whose Authenticator (the suite's) decides. It runs on the subtest's goroutine and
	// may fail t. Register the server's teardown with t.Cleanup: when the
	// subtest ends the suite first shuts the node down (every session ends
	// with 1012), then your cleanups run (stop the server, wait for its
	// goroutines).
	// Required.
	Start func(t *testing.T, srv Server) Dialer
}

// Server is what the suite hands Harness.Start.
type Server struct {
	// Node is a fresh node on a memory broker, owned by the suite. Its
	// Authenticator is the suite's (see the Auth* subtests): the adapter
	// must pass the client's credentials to Node.Accept (or
	// Node.Authenticate for a request it must answer with a status), and
	// decide no identity itself.
	Node *core.Node
}

// Dialer opens one client connection. It returns an error if the
// connection could not be established; a server that rejects the
// credentials may do so (an HTTP 401) or accept the connection and then
// close it with 4001.
type Dialer func(t *testing.T, opts ConnectOpts) (Client, error)

// ConnectOpts is what a client presents when it connects.
type ConnectOpts struct {
	// User is the claimed user id; empty connects anonymously.
	User string
	// Rooms are joined before the welcome.
	Rooms []string
	// Since resumes after that message id.
	Since string
	// Token is the bearer token.
	Token string
	// Silent: the client does not answer the server's keep-alives and
	// sends nothing by itself, as a client that hung would. When false the
	// client behaves like a healthy one: it answers pings (or sends its
	// own keep-alives, whatever the transport's protocol asks of it).
	Silent bool
}

// Client is one connection, implemented by the harness for its transport.
// The suite calls its methods from the test goroutine only.
type Client interface {
	// Send sends one encoded envelope to the server. A bidirectional
	// transport writes it on the connection; a unidirectional one sends it
	// on its side channel (an HTTP POST carrying the same identity) and
	// makes the reply envelope available through Next.
	Send(frame []byte) error

	// Next returns the next envelope the server sent, in order, waiting
	// until ctx ends. Transport-level keep-alives are not envelopes and
	// never show up here. After the connection has ended and every
	// envelope received before that has been returned, Next returns an
	// error wrapping ErrClosed.
	Next(ctx context.Context) (*core.Envelope, error)

	// Pings reports how many server keep-alives (ping frames, comment
	// lines, blank lines) the client has received so far.
	Pings() int

	// Close ends the connection from the client side, abruptly if the
	// transport allows it (the server must notice by itself). Idempotent.
	Close() error

	// Closed waits until the server has ended the connection (or ctx
	// ends) and returns the close code it sent: 0 if the transport cannot
	// carry one (see Features.CloseCodes) or the connection dropped
	// without one.
	Closed(ctx context.Context) (code int, err error)
}

// ErrClosed is wrapped by Client.Next once the connection has ended and
// nothing is left to read.
var ErrClosed = errors.New("switchboard/adaptertest: connection closed")

// Features describes honest differences between transports. Each field
// changes assertions; none disables a subtest.
type Features struct {
	// Unidirectional: the client cannot send on the connection (SSE,
	// long-poll): Client.Send goes through a separate channel, replies may
	// arrive out of order with room messages, and silence is not a sign
	// of death, so a silent client must stay connected past the heartbeat
	// timeout instead of being dropped with 4009.
	Unidirectional bool

	// CloseCodes: the client observes the numeric code the server closes
	// with (a WebSocket close frame, a final close line or event). When
	// false the suite asserts only that the connection ends.
	CloseCodes bool

	// ServerPings: the transport implements core.Pinger and the client
	// observes its keep-alives (Client.Pings grows every heartbeat
	// interval). When false the transport has no server keep-alive and
	// liveness rests on the client's own traffic.
	ServerPings bool

	// FixedRooms: a connection's rooms are fixed when it opens, because
	// its side channel is stateless (SSE and long-poll with POST /send):
	// join and leave answer reconnect_required and change nothing, and the
	// client changes rooms by reconnecting. The suite asserts exactly that
	// instead of join and leave acks.
	FixedRooms bool

	// Connectionless: there is no connection between the client's
	// requests (long-poll). Each request is a short-lived session, so the
	// server sends no welcome (no conn id, no generated user id, no room
	// list), and the client is a member of its rooms only while a request
	// waits. The Dialer returns once the server has accepted the
	// credentials and the client holds its position in the log (a first
	// request answered); Next yields messages and replies only, and a
	// recovered:false answer must surface as an error from Next. The
	// suite then proves identity and rooms by what is delivered rather
	// than by the welcome, and waits for membership to show (a request
	// outstanding) instead of reading it once.
	Connectionless bool
}

// Run runs the conformance suite against the adapter h starts.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Start == nil {
		t.Fatal("adaptertest: Harness.Start is nil")
	}
	s := newSuite(h)
	tests := []struct {
		name string
		fn   func(t *testing.T, s *suite)
	}{
		{"Welcome", testWelcome},
		{"WelcomeAnonymous", testWelcomeAnonymous},
		{"JoinLeave", testJoinLeave},
		{"PublishRoomOnly", testPublishRoomOnly},
		{"DirectEveryConnection", testDirect},
		{"Resume", testResume},
		{"BadEnvelope", testBadEnvelope},
		{"Unauthorized", testUnauthorized},
		{"AuthRooms", testAuthRooms},
		{"AuthExpired", testAuthExpired},
		{"AuthRefresh", testAuthRefresh},
		{"AuthMetadata", testAuthMetadata},
		{"AuthAnonymous", testAuthAnonymous},
		{"HeartbeatKeepsAlive", testHeartbeatKeepsAlive},
		{"HeartbeatSilentClient", testHeartbeatSilent},
		{"CleanupOnDisconnect", testCleanup},
		{"Shutdown", testShutdown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, s)
		})
	}
}
