package config

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-dev/switchboard/edge/webhook"
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
func registerWebhookFlags(fs *flag.FlagSet, w *Webhooks) {
	fs.StringVar(&w.ConnectURL, "webhook-connect", "", "URL POSTed for every new connection after authentication; its answer accepts (may set user, rooms, meta) or rejects it (docs/webhooks.md)")
	fs.StringVar(&w.MessageURL, "webhook-message", "", "URL POSTed with client envelopes of the --webhook-message-types; its answer is replied or published")
	fs.Var((*typeList)(&w.MessageTypes), "webhook-message-types", "comma-separated custom envelope types routed to --webhook-message, e.g. echo,shout")
	fs.StringVar(&w.DisconnectURL, "webhook-disconnect", "", "URL POSTed (in the background, with retries) when a connection ends")
	fs.StringVar(&w.Secret, "webhook-secret", "", "HMAC-SHA256 key signing every webhook call (X-Switchboard-Signature); required with any webhook URL, at least 16 bytes")
	fs.DurationVar(&w.Timeout, "webhook-timeout", 5*time.Second, "bound on each webhook attempt (connect: the whole call, retries included)")
}

// validate checks the webhook settings after parsing.
func (w *Webhooks) validate() error {
	bad := func(flag, msg string) error {
		return fmt.Errorf("invalid --%s (%s): %s", flag, EnvName(flag), msg)
	}
	for _, u := range []struct{ flag, url, path string }{
		{"webhook-connect", w.ConnectURL, "connect"},
		{"webhook-message", w.MessageURL, "message"},
		{"webhook-disconnect", w.DisconnectURL, "disconnect"},
	} {
		if u.url != "" && webhook.CheckURL(u.url) != nil {
			return bad(u.flag, fmt.Sprintf("%q; use an http:// or https:// URL such as https://api.example.com/switchboard/%s", u.url, u.path))
		}
	}
	for _, t := range w.MessageTypes {
		if err := webhook.CheckMessageType(t); err != nil {
			return bad("webhook-message-types", err.Error())
		}
	}
	switch {
	case w.MessageURL != "" && len(w.MessageTypes) == 0:
		return bad("webhook-message-types", "empty; list the custom envelope types to send to --webhook-message, e.g. echo,shout")
	case w.MessageURL == "" && len(w.MessageTypes) > 0:
		return bad("webhook-message", "empty; set it to the URL that handles --webhook-message-types")
	case w.Enabled() && w.Secret == "":
		return bad("webhook-secret", "required with a webhook URL; use a long random secret the backend also knows")
	case w.Secret != "" && len(w.Secret) < 16:
		return bad("webhook-secret", "shorter than 16 bytes; use a long random secret")
	case w.Timeout <= 0:
		return bad("webhook-timeout", "must be positive, e.g. 5s")
	case w.Timeout > time.Minute:
		return bad("webhook-timeout", fmt.Sprintf("%s is too long: a client waits on connect and message calls; use at most 1m", w.Timeout))
	}
	return nil
}

// typeList is a comma-separated list of envelope types; repeats are
// kept once.
type typeList []string

func (l *typeList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *typeList) Get() any { return []string(*l) }

func (l *typeList) Set(s string) error {
	*l = nil
	for t := range strings.SplitSeq(s, ",") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(*l, t) {
			*l = append(*l, t)
		}
	}
	return nil
}
