package httpsend

import (
	"context"
	"encoding/json"
	"errors"
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

// New returns the POST /send handler for node.
//
// Query parameters: user=<id> (development mode only), rooms=a,b (the
// rooms of the sender's stream: publish is allowed there), token=<jwt>
// (or an Authorization: Bearer header).
func New(node *core.Node, config ...Config) fiber.Handler {
	if node == nil {
		panic("switchboard/adapters/httpsend: New: node is nil")
	}
	ncfg := node.Config()
	cfg := configDefault(ncfg, config...)
	lim := newLimiter(cfg.RateLimit, cfg.RateBurst)
	return func(c *fiber.Ctx) error {
		if cfg.Next != nil && cfg.Next(c) {
			return c.Next()
		}
		if node.ShuttingDown() {
			return fail(c, fiber.StatusServiceUnavailable, core.CodeUnavailable, "node is shutting down; retry another node")
		}
		body := c.Body()
		if len(body) > ncfg.MaxMessageSize {
			return fail(c, fiber.StatusRequestEntityTooLarge, CodeTooLarge, "body of %d bytes; at most %d", len(body), ncfg.MaxMessageSize)
		}
		// Copy what may outlive the request: fiber.Ctx strings point into
		// fasthttp's reused buffers, and the user id becomes the "from" of
		// published envelopes, which brokers keep in their history.
		creds := request.Credentials(c, "send", cfg.RequestDetails)
		p, err := node.Authenticate(context.Background(), creds)
		if err != nil {
			node.Logger().Warn("send unauthorized", "remote", creds.RemoteAddr, "err", err)
			r := core.Refuse(err)
			return fail(c, r.Status, r.Code, "%s", r.Message)
		}

		var lines [][]byte
		core.SplitFrame(body, func(line []byte) { lines = append(lines, line) })
		if len(lines) == 0 {
			return fail(c, fiber.StatusBadRequest, core.CodeBadRequest, "empty body: send one envelope, or several separated by newlines")
		}
		key := "user:" + p.User()
		if p.User() == "" {
			key = "ip:" + c.IP()
		}
		if !lim.allow(key, len(lines), time.Now()) {
			return fail(c, fiber.StatusTooManyRequests, CodeRateLimited, "more than %g envelopes per second (burst %d); retry after a backoff", cfg.RateLimit, cfg.RateBurst)
		}

		req := core.StatelessRequest{Principal: p, RemoteAddr: creds.RemoteAddr}
		if q := c.Query("rooms"); q != "" {
			req.Rooms = strings.Split(strings.Clone(q), ",")
		}
		// One request's envelopes run in order, bounded together.
		ctx, cancel := context.WithTimeout(c.UserContext(), ncfg.BrokerTimeout)
		defer cancel()
		status := fiber.StatusOK
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
				if status == fiber.StatusOK {
					status = statusOf(r)
				}
				replies = append(replies, json.RawMessage(r))
			}
		}
		c.Status(status)
		if len(replies) == 1 {
			c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
			return c.Send(replies[0])
		}
		return c.JSON(replies)
	}
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
		return fiber.StatusOK
	}
	switch probe.Data.Code {
	case core.CodeBadRequest, core.CodeUnknownType, core.CodeInvalidRoom, core.CodeInvalidUser,
		core.CodeTooManyRooms, core.CodeReconnectRequired:
		return fiber.StatusBadRequest
	case core.CodeNotJoined, core.CodeForbidden:
		return fiber.StatusForbidden
	case core.CodeUnavailable, core.CodeBrokerDown:
		return fiber.StatusServiceUnavailable
	case core.CodeUnconfirmed:
		return fiber.StatusAccepted // probably delivered: not worth a blind retry
	case CodeUnauthorized:
		return fiber.StatusUnauthorized
	default:
		return fiber.StatusInternalServerError
	}
}

// fail answers a request refused as a whole with one error envelope.
func fail(c *fiber.Ctx, status int, code, format string, args ...any) error {
	err := core.Errorf(code, format, args...)
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(errorEnvelope("", err.Code, err.Message))
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
