package config

import (
	"flag"
	"time"
)

// Webhooks configures the upstream routes the edge calls (edge/webhook):
// connect, message and disconnect.
type Webhooks struct {
	ConnectURL    string
	MessageURL    string
	MessageTypes  []string
	DisconnectURL string
	Secret        string
	Timeout       time.Duration
}

// Enabled reports whether any route is configured.
func (w Webhooks) Enabled() bool {
	return w.ConnectURL != "" || w.MessageURL != "" || w.DisconnectURL != ""
}

// registerWebhookFlags defines the webhook flags on fs.
func registerWebhookFlags(fs *flag.FlagSet, w *Webhooks) {}

// validate checks the webhook settings after parsing.
func (w *Webhooks) validate() error { return nil }
