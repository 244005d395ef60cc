package server

import (
	"log/slog"
	"net/url"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
	"github.com/switchboard-dev/switchboard/edge/webhook"
)

// webhooks wires the upstream routes (edge/webhook) into the server. A
// nil *webhooks (none configured) is valid and does nothing.
type webhooks struct{ h *webhook.Hooks }

func newWebhooks(cfg config.Config, logger *slog.Logger) (*webhooks, error) {
	w := cfg.Webhooks
	if !w.Enabled() {
		return nil, nil
	}
	w.Tracer = cfg.Tracer
	h, err := webhook.New(w, logger)
	if err != nil {
		return nil, config.Restate(err)
	}
	logger.Info("webhooks on", "connect", redact(w.ConnectURL), "message", redact(w.MessageURL), "message_types", w.MessageTypes, "disconnect", redact(w.DisconnectURL), "timeout", w.Timeout)
	return &webhooks{h: h}, nil
}

// redact hides a password in a webhook URL for logs.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return raw
}

// authenticator wraps next with the connect route.
func (w *webhooks) authenticator(next core.Authenticator) core.Authenticator {
	if w == nil {
		return next
	}
	return w.h.Authenticator(next)
}

// onEvent receives every lifecycle event (disconnect route).
func (w *webhooks) onEvent(ev core.Event) {
	if w != nil {
		w.h.OnEvent(ev)
	}
}

// register adds the message route's handlers to the node's router.
func (w *webhooks) register(n *core.Node) {
	if w != nil {
		w.h.Register(n)
	}
}

// close stops background deliveries, bounded.
func (w *webhooks) close() error {
	if w == nil {
		return nil
	}
	return w.h.Close()
}
