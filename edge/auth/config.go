package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// ErrInvalidConfig is wrapped by the error Validate (and New) returns for a
// Config it refuses.
var ErrInvalidConfig = errors.New("switchboard/edge/auth: invalid config")

// Config configures an Authenticator. Zero values mean the default; where
// a field says so, a negative value disables the feature. At least one key
// source (Secret, PublicKeyFile, JWKSURL, JWKSFile) is required, and the
// algorithms accepted follow from the keys: HS256 with Secret, RS256 with
// RSA keys, ES256 with P-256 keys. Nothing else is ever accepted ("none"
// included).
type Config struct {
	// Secret is the HS256 shared secret, at least 16 bytes.
	// Optional. Default: none (HS256 tokens are refused).
	Secret []byte

	// PublicKeyFile is a PEM file with one or more RSA (at least 2048
	// bits) or ECDSA P-256 public keys ("PUBLIC KEY", "RSA PUBLIC KEY") or
	// certificates ("CERTIFICATE", whose key is used; validity dates are
	// not checked). It is read once, in New. These keys have no key id:
	// they verify tokens without a "kid" header, and tokens whose kid no
	// JWKS key has.
	// Optional. Default: none.
	PublicKeyFile string

	// JWKSURL (http or https) and JWKSFile locate a JSON Web Key Set
	// (RFC 7517) of RSA and EC P-256 signing keys, selected by the token's
	// "kid" header. Keys of other types, or marked for encryption
	// ("use": "enc"), are skipped with a log line. The set is loaded in New
	// (a failure is New's error) and reloaded every JWKSRefresh; a failed
	// reload keeps the previous keys and logs a warning. Both may be set:
	// the sets are merged.
	// Optional. Default: none.
	JWKSURL  string
	JWKSFile string

	// JWKSRefresh is how often the key set is reloaded in the background.
	// Besides, a token with an unknown kid triggers a reload, at most once
	// per 30s, before it is rejected. Negative disables the periodic
	// reload (the unknown-kid reload stays).
	// Optional. Default: 10m.
	JWKSRefresh time.Duration

	// Audience, when set, must be one of the token's "aud" values.
	// Optional. Default: "" (aud is not checked).
	Audience string

	// Issuer, when set, must equal the token's "iss".
	// Optional. Default: "" (iss is not checked).
	Issuer string

	// Leeway is the clock skew allowed when checking exp, nbf and iat (a
	// token issued further in the future is refused). Identity.Expires is
	// exp + Leeway. Negative means no leeway.
	// Optional. Default: 30s.
	Leeway time.Duration

	// Anonymous, when set, admits requests without a token as an anonymous
	// identity (User "", so core generates an id) with these permissions.
	// Patterns are validated by New.
	// Optional. Default: nil (a request without a token is refused with
	// "token required").
	Anonymous *core.Permissions

	// HTTPClient fetches JWKSURL.
	// Optional. Default: a client with a 10s timeout.
	HTTPClient *http.Client

	// Logger receives key (re)load events; tokens are never logged.
	// Optional. Default: slog.Default().
	Logger *slog.Logger

	// Test hooks, unexported: a clock, the minimum interval between
	// unknown-kid reloads, and a callback after every background reload.
	now          func() time.Time
	kidRefetch   time.Duration
	afterRefresh func(error)
}

// Defaults applied to zero Config fields, and fixed limits.
const (
	DefaultJWKSRefresh = 10 * time.Minute
	DefaultLeeway      = 30 * time.Second
	DefaultHTTPTimeout = 10 * time.Second

	// MinSecretLen is the shortest HS256 Secret accepted.
	MinSecretLen = 16
	// MinRSABits is the smallest RSA modulus accepted.
	MinRSABits = 2048
	// MaxPatterns bounds each list of a token's rooms claim.
	MaxPatterns = 256
	// MaxTokenLen bounds the token size, in bytes.
	MaxTokenLen = 64 << 10

	// unknownKIDRefetch is the minimum interval between key set reloads
	// triggered by tokens with an unknown kid.
	unknownKIDRefetch = 30 * time.Second
	// maxJWKSBytes bounds a JWKS document.
	maxJWKSBytes = 1 << 20
)

func (c *Config) setDefaults() {
	if c.JWKSRefresh == 0 {
		c.JWKSRefresh = DefaultJWKSRefresh
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.kidRefetch == 0 {
		c.kidRefetch = unknownKIDRefetch
	}
}

// HasKeys reports whether c names a key source (Secret, PublicKeyFile,
// JWKSURL or JWKSFile), without which New refuses it.
func (c Config) HasKeys() bool {
	return len(c.Secret) > 0 || c.PublicKeyFile != "" || c.JWKSURL != "" || c.JWKSFile != ""
}

// WithDefaults returns c with every zero field set to its default, as
// New applies them.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

// Validate reports the first field New would refuse without reading any
// key, as a *core.ConfigError wrapping ErrInvalidConfig, or a
// *SourceError for a key source. Whether the key files and URL hold
// usable keys is only known to New (and CheckFiles).
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return core.Invalid(ErrInvalidConfig, field, format, args...)
	}
	if !c.HasKeys() {
		return bad("Secret", "no key source: set Secret, PublicKeyFile, JWKSURL or JWKSFile")
	}
	if len(c.Secret) > 0 && len(c.Secret) < MinSecretLen {
		return bad("Secret", "%d bytes is shorter than %d; use a long random secret", len(c.Secret), MinSecretLen)
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		switch {
		case err != nil:
			return fmt.Errorf("%w: %w", ErrInvalidConfig, &SourceError{Field: "JWKSURL", Value: c.JWKSURL, Err: err})
		case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
			return fmt.Errorf("%w: %w", ErrInvalidConfig, &SourceError{Field: "JWKSURL", Value: c.JWKSURL, Err: errors.New("want an absolute http or https URL")})
		}
	}
	if c.Anonymous != nil {
		if err := validatePermissions(c.Anonymous.Subscribe, c.Anonymous.Publish); err != nil {
			return bad("Anonymous", "%v", err)
		}
	}
	return nil
}

// CheckFiles reports, without any network access, a Config New would
// refuse: what Validate finds, then PublicKeyFile and JWKSFile read and
// parsed as New reads them. JWKSURL is checked for its form only (New
// fetches it). The files are read again by New: CheckFiles lets a program
// refuse a bad setting before it opens anything.
func (c Config) CheckFiles() error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.PublicKeyFile != "" {
		if _, err := readPEMFile(c.PublicKeyFile); err != nil {
			return fmt.Errorf("switchboard/edge/auth: %w", err)
		}
	}
	if c.JWKSFile != "" {
		if _, _, err := fetchJWKS(context.Background(), nil, "", c.JWKSFile); err != nil {
			return fmt.Errorf("switchboard/edge/auth: %w", err)
		}
	}
	return nil
}

// SourceError is wrapped by the error of New, Validate and CheckFiles when
// one key source is at fault, so that a caller can name its own setting
// for it (the edge names its flag).
type SourceError struct {
	// Field is the Config field: PublicKeyFile, JWKSURL or JWKSFile.
	Field string
	// Value is the field's value: the path or the URL.
	Value string
	// Err says what is wrong with it.
	Err error
}

func (e *SourceError) Error() string { return e.Field + " " + e.Value + ": " + e.Err.Error() }

func (e *SourceError) Unwrap() error { return e.Err }
