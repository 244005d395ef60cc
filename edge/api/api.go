package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-dev/switchboard/core"
)

// Prefix is where the API is mounted.
const Prefix = "/api/v1"

// Limits of the API.
const (
	// DefaultMaxBody bounds a request body.
	DefaultMaxBody = 1 << 20
	// MaxBatch bounds the messages of one batch call.
	MaxBatch = 100
	// DefaultHistoryLimit and MaxHistoryLimit bound a history call.
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = 1000
	// MaxIdempotencyKey bounds an idempotency key, in bytes.
	MaxIdempotencyKey = 256
)

// Config configures Register.
type Config struct {
	// Node is the edge's node. Required.
	Node *core.Node

	// Keys are the API keys accepted as "Authorization: Bearer <key>".
	// Register panics without any: the API must never be open.
	Keys []string

	// Presence answers GET /rooms/{room}/presence.
	// Optional. Default: nil, the route answers 501.
	Presence Presence

	// MaxBody bounds request bodies (413 beyond).
	// Optional. Default: DefaultMaxBody.
	MaxBody int

	// Logger receives a line per failed call.
	// Optional. Default: the node's logger.
	Logger *slog.Logger
}

// Presence lists who is in a room across the cluster.
type Presence interface {
	Members(ctx context.Context, room string) ([]Member, error)
}

// Member is one connection in a room.
type Member struct {
	User string            `json:"user"`
	Conn string            `json:"conn"`
	Node string            `json:"node"`
	Meta map[string]string `json:"meta,omitempty"`
}

// Register mounts the server API on app under Prefix. Every route needs
// an API key; errors are {"error":{"code","message"}} with the status
// docs/api.yaml documents.
func Register(app fiber.Router, cfg Config) {
	if cfg.Node == nil {
		panic("switchboard/edge/api: Register: Node is nil")
	}
	if len(cfg.Keys) == 0 {
		panic("switchboard/edge/api: Register: no API keys")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Logger == nil {
		cfg.Logger = cfg.Node.Logger()
	}
	a := &api{cfg: cfg}
	for _, k := range cfg.Keys {
		a.keys = append(a.keys, sha256.Sum256([]byte(k)))
	}
	g := app.Group(Prefix, a.authenticate)
	g.Post("/publish", a.publish)
	g.Post("/publish/batch", a.publishBatch)
	g.Get("/rooms/:room/history", a.history)
	g.Get("/rooms/:room/presence", a.presence)
	g.Post("/connections/:id/send", a.sendToConn)
	g.Delete("/connections/:id", a.disconnectConn)
	g.Delete("/users/:user", a.disconnectUser)
	g.Use(func(c *fiber.Ctx) error {
		return fail(c, fiber.StatusNotFound, "not_found", "no such API route: "+c.Method()+" "+c.Path()+" (see docs/api.yaml)")
	})
}

// Routes lists the API's routes as "METHOD /path" with {param} syntax,
// for the test that checks docs/api.yaml documents each.
func Routes() []string {
	return []string{
		"POST /api/v1/publish",
		"POST /api/v1/publish/batch",
		"GET /api/v1/rooms/{room}/history",
		"GET /api/v1/rooms/{room}/presence",
		"POST /api/v1/connections/{id}/send",
		"DELETE /api/v1/connections/{id}",
		"DELETE /api/v1/users/{user}",
	}
}

type api struct {
	cfg  Config
	keys [][32]byte
}

// authenticate checks the bearer key in constant time: every configured
// key is compared (as fixed-size hashes, so lengths leak nothing).
func (a *api) authenticate(c *fiber.Ctx) error {
	h := c.Get(fiber.HeaderAuthorization)
	key, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || key == "" {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="switchboard"`)
		return fail(c, fiber.StatusUnauthorized, core.CodeUnauthorized, "API key required: Authorization: Bearer <key>")
	}
	sum := sha256.Sum256([]byte(key))
	match := 0
	for _, k := range a.keys {
		match |= subtle.ConstantTimeCompare(sum[:], k[:])
	}
	if match != 1 {
		a.cfg.Logger.Warn("api: wrong key", "remote", c.IP(), "path", c.Path())
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="switchboard", error="invalid_token"`)
		return fail(c, fiber.StatusUnauthorized, core.CodeUnauthorized, "wrong API key")
	}
	if len(c.Body()) > a.cfg.MaxBody {
		return fail(c, fiber.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over %d bytes", a.cfg.MaxBody))
	}
	return c.Next()
}

// PublishRequest is the body of POST /publish and one item of a batch.
// Exactly one of Room, To and Broadcast chooses the target.
type PublishRequest struct {
	Room           string          `json:"room,omitempty"`
	To             string          `json:"to,omitempty"`
	Broadcast      bool            `json:"broadcast,omitempty"`
	Type           string          `json:"type,omitempty"`
	From           string          `json:"from,omitempty"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
}

// PublishResult answers one publish.
type PublishResult struct {
	ID        string `json:"id,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"` // the idempotency key was seen: nothing was published again
	Error     *Err   `json:"error,omitempty"`     // batch items only
}

// Err is the error object of every failed call.
type Err struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (a *api) publish(c *fiber.Ctx) error {
	req, err := DecodePublishRequest(c.Body())
	if err != nil {
		return fail(c, fiber.StatusBadRequest, core.CodeBadRequest, err.Error())
	}
	res, status := Publish(c.UserContext(), a.cfg.Node, req)
	if res.Error != nil {
		return fail(c, status, res.Error.Code, res.Error.Message)
	}
	return c.Status(status).JSON(res)
}

// BatchRequest is the body of POST /publish/batch.
type BatchRequest struct {
	Messages []PublishRequest `json:"messages"`
}

func (a *api) publishBatch(c *fiber.Ctx) error {
	var req BatchRequest
	if err := decode(c.Body(), &req); err != nil {
		return fail(c, fiber.StatusBadRequest, core.CodeBadRequest, err.Error())
	}
	if len(req.Messages) == 0 || len(req.Messages) > MaxBatch {
		return fail(c, fiber.StatusBadRequest, core.CodeBadRequest, fmt.Sprintf("messages: send 1 to %d", MaxBatch))
	}
	out := struct {
		Results []PublishResult `json:"results"`
	}{Results: make([]PublishResult, len(req.Messages))}
	for i, m := range req.Messages {
		out.Results[i], _ = Publish(c.UserContext(), a.cfg.Node, m)
	}
	return c.JSON(out)
}

// DecodePublishRequest parses the body of POST /publish as the API does:
// one JSON object, no unknown fields.
func DecodePublishRequest(body []byte) (PublishRequest, error) {
	var req PublishRequest
	err := decode(body, &req)
	return req, err
}

// Publish validates and publishes one request through node exactly as
// POST /publish does: the same checks, envelope (default type, ts,
// compacted data), idempotency key and digest. The outbox forwarder
// publishes with it. The status is what the call answers: 200 published
// (Duplicate when the key was: nothing was published again); 400 or 422
// refused, for good; 202 (not confirmed) or 503 (not accepted): retry
// with the same key.
func Publish(ctx context.Context, node *core.Node, req PublishRequest) (PublishResult, int) {
	env, channel, err := envelopeFor(req)
	if err != nil {
		return errResult(err), fiber.StatusBadRequest
	}
	key := req.IdempotencyKey
	if len(key) > MaxIdempotencyKey {
		return errResult(core.Errorf(core.CodeBadRequest, "idempotency_key longer than %d bytes", MaxIdempotencyKey)), fiber.StatusBadRequest
	}
	if i := strings.IndexFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		// Logs carry keys in headers (JetStream's Nats-Msg-Id) where a
		// control character would be rewritten and two keys collide.
		return errResult(core.Errorf(core.CodeBadRequest, "idempotency_key: control character at byte %d; use printable characters", i)), fiber.StatusBadRequest
	}
	// The broker decides a key in its log, for every node alike (see
	// core.Publication): a retry on any node, after any crash, finds it.
	pub := core.Publication{Channel: channel, Envelope: env, Key: key}
	if key != "" {
		pub.Digest = fingerprint(req)
	}
	res, err := node.PublishKeyed(ctx, pub)
	if err == nil {
		return PublishResult{ID: res.ID, Duplicate: res.Duplicate}, fiber.StatusOK
	}
	switch core.ErrorCode(err) {
	case core.CodeKeyReused:
		return errResult(err), fiber.StatusUnprocessableEntity
	case core.CodeUnconfirmed:
		return errResult(err), fiber.StatusAccepted
	}
	return errResult(err), fiber.StatusServiceUnavailable
}

// fingerprint identifies a publish request without its idempotency key,
// so a key reused for something else is caught.
func fingerprint(req PublishRequest) string {
	req.IdempotencyKey = ""
	req.Data = compact(req.Data)
	b, _ := json.Marshal(req)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// envelopeFor builds the envelope and broker channel of a publish.
func envelopeFor(req PublishRequest) (*core.Envelope, string, error) {
	targets := 0
	for _, set := range []bool{req.Room != "", req.To != "", req.Broadcast} {
		if set {
			targets++
		}
	}
	if targets != 1 {
		return nil, "", core.Errorf(core.CodeBadRequest, `give exactly one target: "room", "to" or "broadcast": true`)
	}
	if len(req.Data) == 0 {
		return nil, "", core.Errorf(core.CodeBadRequest, `"data" is required (any JSON value)`)
	}
	if req.From != "" {
		if err := core.ValidateUser(req.From); err != nil {
			return nil, "", core.Errorf(core.CodeBadRequest, "from: %v", err)
		}
	}
	env := &core.Envelope{V: core.Version, From: req.From, TS: time.Now().UnixMilli(), Data: compact(req.Data)}
	typ := func(def string) error {
		env.Type = def
		if req.Type == "" || req.Type == def {
			return nil
		}
		if err := core.ValidateType(req.Type); err != nil {
			return err
		}
		if core.Reserved(req.Type) {
			return core.Errorf(core.CodeBadRequest, "type %q is a built-in type; use %q or a custom type", req.Type, def)
		}
		env.Type = req.Type
		return nil
	}
	switch {
	case req.Room != "":
		if err := core.ValidateRoom(req.Room); err != nil {
			return nil, "", err
		}
		env.Room = req.Room
		if err := typ(core.TypeMessage); err != nil {
			return nil, "", err
		}
		return env, core.RoomChannel(req.Room), nil
	case req.To != "":
		if err := core.ValidateUser(req.To); err != nil {
			return nil, "", err
		}
		if req.Type != "" && req.Type != core.TypeDirect {
			return nil, "", core.Errorf(core.CodeBadRequest, `a message to a user is always of type "direct"`)
		}
		env.Type, env.To = core.TypeDirect, req.To
		return env, core.UserChannel(req.To), nil
	}
	if err := typ(core.TypeBroadcast); err != nil {
		return nil, "", err
	}
	return env, core.BroadcastChannel, nil
}

func (a *api) history(c *fiber.Ctx) error {
	room := strings.Clone(c.Params("room"))
	if err := core.ValidateRoom(room); err != nil {
		return fail(c, fiber.StatusBadRequest, core.ErrorCode(err), err.Error())
	}
	limit := DefaultHistoryLimit
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxHistoryLimit {
			return fail(c, fiber.StatusBadRequest, core.CodeBadRequest, fmt.Sprintf("limit must be 1 to %d", MaxHistoryLimit))
		}
		limit = n
	}
	since := strings.Clone(c.Query("since"))
	if since == "" {
		return fail(c, fiber.StatusBadRequest, core.CodeBadRequest, "since is required: the id after which to read (ids come with messages, acks and this API's publish answers)")
	}
	res, err := a.cfg.Node.History(c.UserContext(), core.HistoryRequest{Channels: []string{core.RoomChannel(room)}, Since: since, Limit: limit})
	if err != nil {
		return fail(c, fiber.StatusServiceUnavailable, core.ErrorCode(err), err.Error())
	}
	out := struct {
		Messages  []json.RawMessage `json:"messages"`
		Recovered bool              `json:"recovered"`
	}{Messages: make([]json.RawMessage, 0, len(res.Envelopes)), Recovered: res.Recovered}
	for _, env := range res.Envelopes {
		out.Messages = append(out.Messages, env.Encode())
	}
	return c.JSON(out)
}

func (a *api) presence(c *fiber.Ctx) error {
	room := strings.Clone(c.Params("room"))
	if err := core.ValidateRoom(room); err != nil {
		return fail(c, fiber.StatusBadRequest, core.ErrorCode(err), err.Error())
	}
	if a.cfg.Presence == nil {
		return fail(c, fiber.StatusNotImplemented, "not_implemented", "presence is not enabled on this edge")
	}
	members, err := a.cfg.Presence.Members(c.UserContext(), room)
	if err != nil {
		return fail(c, fiber.StatusServiceUnavailable, core.CodeUnavailable, "presence unavailable; retry")
	}
	users := map[string]bool{}
	for _, m := range members {
		users[m.User] = true
	}
	return c.JSON(fiber.Map{"room": room, "users": len(users), "connections": members})
}

// SendRequest is the body of POST /connections/{id}/send.
type SendRequest struct {
	Type string          `json:"type,omitempty"`
	Data json.RawMessage `json:"data"`
}

func (a *api) sendToConn(c *fiber.Ctx) error {
	var req SendRequest
	if err := decode(c.Body(), &req); err != nil {
		return fail(c, fiber.StatusBadRequest, core.CodeBadRequest, err.Error())
	}
	if len(req.Data) == 0 {
		return fail(c, fiber.StatusBadRequest, core.CodeBadRequest, `"data" is required`)
	}
	typ := req.Type
	if typ == "" {
		typ = "notice"
	}
	if err := core.ValidateType(typ); err != nil || core.Reserved(typ) {
		return fail(c, fiber.StatusBadRequest, core.CodeBadRequest, fmt.Sprintf("type %q: use a custom type (default notice)", typ))
	}
	env := &core.Envelope{V: core.Version, Type: typ, TS: time.Now().UnixMilli(), Data: compact(req.Data)}
	if err := a.cfg.Node.SendToConn(c.UserContext(), strings.Clone(c.Params("id")), env); err != nil {
		return a.commandFailed(c, err)
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"status": "accepted"})
}

func (a *api) disconnectConn(c *fiber.Ctx) error {
	d, err := disconnectFrom(c)
	if err != nil {
		return fail(c, fiber.StatusBadRequest, core.CodeBadRequest, err.Error())
	}
	if err := a.cfg.Node.DisconnectConn(c.UserContext(), strings.Clone(c.Params("id")), d); err != nil {
		return a.commandFailed(c, err)
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"status": "accepted"})
}

func (a *api) disconnectUser(c *fiber.Ctx) error {
	d, err := disconnectFrom(c)
	if err != nil {
		return fail(c, fiber.StatusBadRequest, core.CodeBadRequest, err.Error())
	}
	if err := a.cfg.Node.DisconnectUser(c.UserContext(), strings.Clone(c.Params("user")), d); err != nil {
		return a.commandFailed(c, err)
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"status": "accepted"})
}

func (a *api) commandFailed(c *fiber.Ctx, err error) error {
	switch code := core.ErrorCode(err); code {
	case core.CodeBadRequest, core.CodeInvalidUser:
		return fail(c, fiber.StatusBadRequest, code, err.Error())
	case core.CodeUnconfirmed:
		return fail(c, fiber.StatusAccepted, code, err.Error())
	}
	return fail(c, fiber.StatusServiceUnavailable, core.CodeBrokerDown, "command not accepted by the broker; retry")
}

// disconnectFrom reads ?code=&reason=&reconnect= (defaults: 4010
// "disconnected by the application", no reconnect).
func disconnectFrom(c *fiber.Ctx) (core.Disconnect, error) {
	d := core.DisconnectByApp
	if s := c.Query("code"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 4000 || n > 4999 {
			return d, errors.New("code must be 4000 to 4999 (application close codes)")
		}
		d.Code = uint16(n)
	}
	if r := c.Query("reason"); r != "" {
		if len(r) > 120 {
			return d, errors.New("reason longer than 120 bytes (a WebSocket close reason must fit 123)")
		}
		d.Reason = strings.Clone(r)
	}
	if s := c.Query("reconnect"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return d, errors.New("reconnect must be true or false")
		}
		d.Reconnect = b
	}
	return d, nil
}

// decode parses a JSON body strictly: one object, no unknown fields.
func decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("empty body: send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON body: %v", err)
	}
	if dec.More() {
		return errors.New("malformed JSON body: more than one value")
	}
	return nil
}

func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

func errResult(err error) PublishResult {
	code := core.ErrorCode(err)
	if code == "" {
		code = core.CodeInternal
	}
	msg := err.Error()
	var pe *core.Error
	if errors.As(err, &pe) {
		msg = pe.Message
	}
	return PublishResult{Error: &Err{Code: code, Message: msg}}
}

func fail(c *fiber.Ctx, status int, code, msg string) error {
	if code == "" {
		code = core.CodeInternal
	}
	return c.Status(status).JSON(fiber.Map{"error": Err{Code: code, Message: msg}})
}
