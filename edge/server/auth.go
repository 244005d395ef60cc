package server

import (
	"context"
	"log/slog"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/auth"
	"github.com/switchboard-dev/switchboard/edge/config"
)

// Authenticator is the edge's authentication chain, built once from its
// configuration and given to the node (core.Config.Authenticator), so
// that every transport's connections go through it, built-in or custom:
// JWT (an HMAC secret, a public key or JWKS) with the anonymous rules in
// production, core.Insecure in development mode, then the connect
// webhook when the configuration names one. Close releases what it
// holds (the JWKS refresh, the webhook client).
type Authenticator struct {
	core.Authenticator
	jwt   *auth.Authenticator // nil in development mode
	hooks *webhooks           // nil when no webhook is configured
}

// NewAuthenticator builds the chain of cfg, as the edge binary does. A
// custom server embedding Switchboard uses it to authenticate exactly as
// the edge would; its errors are config.Restate's (exit status 2).
func NewAuthenticator(cfg config.Config, logger *slog.Logger) (*Authenticator, error) {
	if logger == nil {
		logger = slog.Default()
	}
	hooks, err := newWebhooks(cfg, logger)
	if err != nil {
		return nil, err
	}
	a, err := newAuthenticator(cfg, hooks, logger)
	if err != nil {
		_ = hooks.close()
		return nil, err
	}
	a.hooks = hooks
	return a, nil
}

// newAuthenticator builds the chain with hooks' connect route (hooks
// stays the caller's).
func newAuthenticator(cfg config.Config, hooks *webhooks, logger *slog.Logger) (*Authenticator, error) {
	a := &Authenticator{Authenticator: core.Insecure}
	if cfg.Production() {
		actx, cancel := context.WithTimeout(context.Background(), brokerStartTimeout)
		ac := cfg.Auth
		ac.Logger = logger
		jwt, err := auth.New(actx, ac)
		cancel()
		if err != nil {
			return nil, config.Restate(err)
		}
		a.jwt, a.Authenticator = jwt, jwt
	} else {
		logger.Warn("development mode: no --jwt-secret, --jwt-public-key or --jwks-url, clients choose their user id with ?user=; configure JWT in production")
	}
	a.Authenticator = hooks.authenticator(a.Authenticator)
	return a, nil
}

// ReadsRequestDetails reports whether the chain reads request headers
// and query parameters (a connect webhook): see core.DetailsReader.
func (a *Authenticator) ReadsRequestDetails() bool { return core.ReadsRequestDetails(a.Authenticator) }

// Close releases the chain. Idempotent.
func (a *Authenticator) Close() error {
	var err error
	if a.jwt != nil {
		err = a.jwt.Close()
	}
	if a.hooks != nil {
		if herr := a.hooks.close(); err == nil {
			err = herr
		}
	}
	return err
}
