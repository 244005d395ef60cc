package server

import (
	"log/slog"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
)

// webhooks wires the upstream routes (edge/webhook) into the server. A
// nil *webhooks (none configured) is valid and does nothing.
type webhooks struct{}

func newWebhooks(cfg config.Config, logger *slog.Logger) (*webhooks, error) { return nil, nil }

// authenticator wraps next with the connect route.
func (w *webhooks) authenticator(next core.Authenticator) core.Authenticator { return next }

// onEvent receives every lifecycle event (disconnect route).
func (w *webhooks) onEvent(core.Event) {}

// register adds the message route's handlers to the node's router.
func (w *webhooks) register(*core.Node) {}

// close stops background deliveries, bounded.
func (w *webhooks) close() error { return nil }
