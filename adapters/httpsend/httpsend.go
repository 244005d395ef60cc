package httpsend

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/adapters/internal/request"
	"github.com/switchboard-dev/switchboard/core"
)

// Error codes this handler answers itself, before any envelope is read.
const (
	CodeUnauthorized = "unauthorized" // 401: bad, expired or missing credentials
	CodeTooLarge     = "too_large"    // 413: body larger than MaxMessageSize
	CodeRateLimited  = "rate_limited" // 429: too many envelopes; retry after a backoff
)

// New returns the POST /send handler for node on Fiber.
//
// Query parameters: user=<id> (development mode only), rooms=a,b (the
// rooms of the sender's stream: publish is allowed there), token=<jwt>
// (or an Authorization: Bearer header).
func New(node *core.Node, config ...Config) fiber.Handler {
	h := newHandler(node, config...)
	return func(c *fiber.Ctx) error {
		if h.cfg.Next != nil && h.cfg.Next(c) {
			return c.Next()
		}
		return request.Reply(c, h.serve(request.Fiber(c)))
	}
}

// NewHandler is New for net/http: the same POST /send on an
// http.ServeMux or any router (Config.Next is Fiber's and unused).
func NewHandler(node *core.Node, config ...Config) http.Handler {
	h := newHandler(node, config...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		request.Write(w, h.serve(request.HTTP(r)))
	})
}

// handler is /send, whichever server carries it.
type handler struct {
	node *core.Node
	ncfg core.Config
	cfg  Config
	lim  *limiter
}

func newHandler(node *core.Node, config ...Config) *handler {
	if node == nil {
		panic("switchboard/adapters/httpsend: node is nil")
	}
	ncfg := node.Config()
	cfg := configDefault(ncfg, config...)
	return &handler{node: node, ncfg: ncfg, cfg: cfg, lim: newLimiter(cfg.RateLimit, cfg.RateBurst)}
}

// serve answers one request.
func (h *handler) serve(r request.Request) *request.Answer {
	node, ncfg, cfg := h.node, h.ncfg, h.cfg
	if node.ShuttingDown() {
		return fail(http.StatusServiceUnavailable, core.CodeUnavailable, "node is shutting down; retry another node")
	}
	body, err := r.Body(ncfg.MaxMessageSize)
	if err != nil {
		return fail(http.StatusBadRequest, core.CodeBadRequest, "reading the body: %v", err)
	}
	if len(body) > ncfg.MaxMessageSize {
		return fail(http.StatusRequestEntityTooLarge, CodeTooLarge, "body of %d bytes; at most %d", len(body), ncfg.MaxMessageSize)
	}
	// Credentials copies what may outlive the request: the user id
	// becomes the "from" of published envelopes, which brokers keep in
	// their history.
	creds := request.Credentials(r, "send", node.RequestDetails())
	p, err := node.Authenticate(context.Background(), creds)
	if err != nil {
		node.Logger().Warn("send unauthorized", "remote", creds.RemoteAddr, "err", err)
		rf := core.Refuse(err)
		return fail(rf.Status, rf.Code, "%s", rf.Message)
	}

	var lines [][]byte
	core.SplitFrame(body, func(line []byte) { lines = append(lines, line) })
	if len(lines) == 0 {
		return fail(http.StatusBadRequest, core.CodeBadRequest, "empty body: send one envelope, or several separated by newlines")
	}
	key := "user:" + p.User()
	if p.User() == "" {
		key = "ip:" + creds.RemoteAddr
	}
	if !h.lim.allow(key, len(lines), time.Now()) {
		return fail(http.StatusTooManyRequests, CodeRateLimited, "more than %g envelopes per second (burst %d); retry after a backoff", cfg.RateLimit, cfg.RateBurst)
	}

	req := core.StatelessRequest{Principal: p, RemoteAddr: creds.RemoteAddr}
	if q := r.Query("rooms"); q != "" {
		req.Rooms = strings.Split(strings.Clone(q), ",")
	}
	// One request's envelopes run in order, bounded together.
	ctx, cancel := context.WithTimeout(r.Context(), ncfg.BrokerTimeout)
	defer cancel()
	status := http.StatusOK
	var replies []json.RawMessage
	for _, line := range lines {
		var out [][]byte
		env, err := core.DecodeEnvelope(line)
		if err != nil {
			out = [][]byte{errorEnvelope(refOf(line), core.ErrorCode(err), errMessage(err))}
		} else {
			out = node.HandleStateless(ctx, req, env)
		}
		for _, r := range out {
			if status == http.StatusOK {
				status = statusOf(r)
			}
			replies = append(replies, json.RawMessage(r))
		}
	}
	if len(replies) == 1 {
		return &request.Answer{Status: status, Body: replies[0]}
	}
	b, err := json.Marshal(replies)
	if err != nil {
		return fail(http.StatusInternalServerError, core.CodeInternal, "encoding the replies: %v", err)
	}
	return &request.Answer{Status: status, Body: b}
}

// statusOf maps a reply envelope to the HTTP status of the request.
func statusOf(reply []byte) int {
	var probe struct {
		Type string `json:"type"`
		Data struct {
			Code string `json:"code"`
		} `json:"data"`
	}
	if json.Unmarshal(reply, &probe) != nil || probe.Type != core.TypeError {
		return http.StatusOK
	}
	switch probe.Data.Code {
	case core.CodeBadRequest, core.CodeUnknownType, core.CodeInvalidRoom, core.CodeInvalidUser,
		core.CodeTooManyRooms, core.CodeReconnectRequired:
		return http.StatusBadRequest
	case core.CodeNotJoined, core.CodeForbidden:
		return http.StatusForbidden
	case core.CodeUnavailable, core.CodeBrokerDown:
		return http.StatusServiceUnavailable
	case core.CodeUnconfirmed:
		return http.StatusAccepted // probably delivered: not worth a blind retry
	case CodeUnauthorized:
		return http.StatusUnauthorized
	default:
		return http.StatusInternalServerError
	}
}

// fail answers a request refused as a whole with one error envelope.
func fail(status int, code, format string, args ...any) *request.Answer {
	err := core.Errorf(code, format, args...)
	return &request.Answer{Status: status, Body: errorEnvelope("", err.Code, err.Message)}
}

func errorEnvelope(ref, code, msg string) []byte {
	data, _ := json.Marshal(struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{code, msg})
	return (&core.Envelope{V: core.Version, Type: core.TypeError, Ref: ref, Data: data}).Encode()
}

func errMessage(err error) string {
	var pe *core.Error
	if errors.As(err, &pe) {
		return pe.Message
	}
	return "internal error"
}

// refOf extracts "ref" from an envelope that failed strict decoding, so
// the error can still be correlated.
func refOf(line []byte) string {
	var probe struct {
		Ref string `json:"ref"`
	}
	if json.Unmarshal(line, &probe) != nil || len(probe.Ref) > core.MaxRefLen {
		return ""
	}
	return probe.Ref
}
