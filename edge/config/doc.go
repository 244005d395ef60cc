// Package config turns flags and SWITCHBOARD_* environment variables into
// the edge's typed configuration. Flags win over the environment; every
// setting has a documented default; a bad value is one error line naming
// the flag, the variable and the fix.
//
// Config holds the edge's own settings and nests the configuration of
// each package it wires (core.Config, auth.Config, webhook.Config,
// presence.Config, the broker's, the outbox's postgres.OutboxConfig): a flag writes into the package's
// field, shows the package's default, and the package's Validate decides,
// its refusal restated with the flag (Restate). Load is safe for
// concurrent use.
package config
