package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/core"
)

// Authenticator verifies JWTs (HS256, RS256, ES256, by the configured
// keys) and turns them into identities. It is safe for concurrent use.
// Build it with New; Close stops its background key refresh.
type Authenticator struct {
	cfg       Config
	parser    *jwt.Parser
	secret    []byte
	pemKeys   []publicKey
	jwks      bool // a JWKS source is configured
	anonymous *core.Permissions
	keys      atomic.Pointer[keySet]

	// reloadMu serialises key set reloads and guards lastKIDReload.
	reloadMu      sync.Mutex
	lastKIDReload time.Time

	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	done      chan struct{} // closed when the refresh goroutine ends
	closeOnce sync.Once
}

var _ core.Authenticator = (*Authenticator)(nil)

// New validates cfg, loads its keys and, when a JWKS source is configured
// and JWKSRefresh is not negative, starts the background refresh that
// Close stops. ctx bounds the initial key load only. A key file or URL
// that cannot be read, or holds no usable key, is an error naming the
// source and the problem.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Authenticator{
		cfg:  cfg,
		jwks: cfg.JWKSURL != "" || cfg.JWKSFile != "",
		done: make(chan struct{}),
	}
	if len(cfg.Secret) > 0 {
		a.secret = slices.Clone(cfg.Secret)
	}
	if cfg.Anonymous != nil {
		a.anonymous = &core.Permissions{
			Subscribe: slices.Clone(cfg.Anonymous.Subscribe),
			Publish:   slices.Clone(cfg.Anonymous.Publish),
		}
	}
	if cfg.PublicKeyFile != "" {
		keys, err := readPEMFile(cfg.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("switchboard/edge/auth: %w", err)
		}
		a.pemKeys = keys
	}
	a.keys.Store(newKeySet(a.pemKeys))
	if a.jwks {
		if err := a.reload(ctx); err != nil {
			return nil, fmt.Errorf("switchboard/edge/auth: %w", err)
		}
	}
	leeway := max(cfg.Leeway, 0)
	a.parser = jwt.NewParser(
		jwt.WithLeeway(leeway),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(cfg.now),
		jwt.WithStrictDecoding(),
	)
	a.ctx, a.cancel = context.WithCancel(context.Background())
	if a.jwks && cfg.JWKSRefresh > 0 {
		go a.refreshLoop()
	} else {
		close(a.done)
	}
	return a, nil
}

// Close stops the background key refresh and waits for it to end. It is
// safe to call more than once; the Authenticator keeps verifying tokens
// with the keys it last loaded.
func (a *Authenticator) Close() error {
	a.closeOnce.Do(a.cancel)
	<-a.done
	return nil
}

func (a *Authenticator) refreshLoop() {
	defer close(a.done)
	t := time.NewTicker(a.cfg.JWKSRefresh)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(a.ctx, DefaultHTTPTimeout)
		err := a.reload(ctx)
		cancel()
		if err != nil && a.ctx.Err() == nil {
			a.cfg.Logger.Warn("auth: JWKS refresh failed, keeping the previous keys", "err", err)
		}
		if a.cfg.afterRefresh != nil {
			a.cfg.afterRefresh(err)
		}
	}
}

// reload loads every JWKS source and, if all succeed, replaces the key
// set (PEM keys are kept). On error the current set stays.
func (a *Authenticator) reload(ctx context.Context) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	return a.reloadLocked(ctx)
}

func (a *Authenticator) reloadLocked(ctx context.Context) error {
	keys := slices.Clone(a.pemKeys)
	var skipped []string
	seen := make(map[string]string)
	for _, src := range []struct{ url, file string }{{url: a.cfg.JWKSURL}, {file: a.cfg.JWKSFile}} {
		if src.url == "" && src.file == "" {
			continue
		}
		got, skip, err := fetchJWKS(ctx, a.cfg.HTTPClient, src.url, src.file)
		if err != nil {
			return err
		}
		name := "JWKSURL"
		if src.file != "" {
			name = "JWKSFile"
		}
		for _, k := range got {
			if k.kid == "" {
				continue
			}
			if other, dup := seen[k.kid]; dup {
				return fmt.Errorf("kid %s is in both %s and %s", quoteClip(k.kid), other, name)
			}
			seen[k.kid] = name
		}
		keys = append(keys, got...)
		skipped = append(skipped, skip...)
	}
	for _, s := range skipped {
		a.cfg.Logger.Debug("auth: JWKS key skipped", "key", s)
	}
	old := a.keys.Swap(newKeySet(keys))
	if old == nil || len(old.all) != len(keys) || !sameKIDs(old, keys) {
		a.cfg.Logger.Info("auth: keys loaded", "keys", len(keys), "kids", kids(keys))
	}
	return nil
}

// reloadForKID reloads the key set for a token with an unknown kid, unless
// such a reload happened less than kidRefetch ago. A caller that waited
// for a concurrent reload finds its result in a.keys.
func (a *Authenticator) reloadForKID() {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	now := a.cfg.now()
	if !a.lastKIDReload.IsZero() && now.Sub(a.lastKIDReload) < a.cfg.kidRefetch {
		return
	}
	a.lastKIDReload = now
	ctx, cancel := context.WithTimeout(a.ctx, DefaultHTTPTimeout)
	defer cancel()
	if err := a.reloadLocked(ctx); err != nil {
		a.cfg.Logger.Warn("auth: JWKS reload for an unknown kid failed, keeping the previous keys", "err", err)
	}
}

func sameKIDs(ks *keySet, keys []publicKey) bool {
	for _, k := range keys {
		if _, ok := ks.byKID[k.kid]; k.kid != "" && !ok {
			return false
		}
	}
	return true
}

func kids(keys []publicKey) []string {
	var out []string
	for _, k := range keys {
		if k.kid != "" {
			out = append(out, k.kid)
		}
	}
	return out
}

// claims is what a token may carry. Rooms stays raw so that a malformed
// rooms claim is reported as such, not as a malformed token.
type claims struct {
	jwt.RegisteredClaims
	Rooms roomsJSON `json:"rooms"`
}

// roomsJSON holds the rooms claim verbatim. present tells an absent claim
// (all rooms) from an explicit null (refused): encoding/json calls
// UnmarshalJSON for a non-pointer field even when the value is null.
type roomsJSON struct {
	present bool
	raw     []byte
}

func (r *roomsJSON) UnmarshalJSON(b []byte) error {
	r.present, r.raw = true, slices.Clone(b)
	return nil
}

// Authenticate verifies c.Token and returns its identity: User from
// "sub", Permissions from "rooms" (nil without a rooms claim), Expires =
// exp + Leeway (zero without exp). c.User is ignored. A request without a
// token is anonymous when Config.Anonymous is set. Every error wraps
// core.ErrUnauthorized, says what is wrong and never contains the token.
func (a *Authenticator) Authenticate(_ context.Context, c core.Credentials) (core.Identity, error) {
	if c.Token == "" {
		if a.anonymous != nil {
			// Shared by every anonymous identity; nobody writes to it.
			return core.Identity{Permissions: a.anonymous}, nil
		}
		return core.Identity{}, unauthorized("token required")
	}
	if len(c.Token) > MaxTokenLen {
		return core.Identity{}, unauthorized(fmt.Sprintf("malformed token: longer than %d bytes", MaxTokenLen))
	}
	var cl claims
	var unknownKID string // set by keyFor when it fell back to PEM keys
	tok, err := a.parser.ParseWithClaims(c.Token, &cl, func(t *jwt.Token) (any, error) {
		return a.keyFor(t, &unknownKID)
	})
	if err != nil {
		if unknownKID != "" && errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			return core.Identity{}, unauthorized(fmt.Sprintf("unknown key id %s (and no key from PublicKeyFile verifies the token)", quoteClip(unknownKID)))
		}
		return core.Identity{}, unauthorized(reason(tok, err))
	}
	if a.cfg.Audience != "" {
		switch {
		case len(cl.Audience) == 0:
			return core.Identity{}, unauthorized("wrong audience: the token has no aud claim")
		case !slices.Contains(cl.Audience, a.cfg.Audience):
			return core.Identity{}, unauthorized("wrong audience")
		}
	}
	if a.cfg.Issuer != "" {
		switch {
		case cl.Issuer == "":
			return core.Identity{}, unauthorized("wrong issuer: the token has no iss claim")
		case cl.Issuer != a.cfg.Issuer:
			return core.Identity{}, unauthorized("wrong issuer")
		}
	}
	if cl.Subject == "" {
		return core.Identity{}, unauthorized("sub claim invalid: missing or empty")
	}
	if err := core.ValidateUser(cl.Subject); err != nil {
		return core.Identity{}, unauthorized("sub claim invalid: " + message(err))
	}
	id := core.Identity{User: cl.Subject}
	if cl.Rooms.present {
		p, err := parseRooms(cl.Rooms.raw)
		if err != nil {
			return core.Identity{}, unauthorized("rooms claim invalid: " + err.Error())
		}
		id.Permissions = p
	}
	if cl.ExpiresAt != nil {
		id.Expires = cl.ExpiresAt.Add(max(a.cfg.Leeway, 0))
	}
	return id, nil
}

// keyError is returned by keyFor; reason reports its message as is.
type keyError struct{ msg string }

func (e *keyError) Error() string { return e.msg }

func keyErrorf(format string, args ...any) error {
	return &keyError{msg: fmt.Sprintf(format, args...)}
}

// keyFor picks the verification key for a token: the secret for HS256;
// for RS256 and ES256 the JWKS key named by kid (reloading the set once
// for an unknown kid), else the kid-less keys of the algorithm's type
// (recording the kid in *unknownKID). A key of the other type than the
// algorithm is refused, never tried.
func (a *Authenticator) keyFor(t *jwt.Token, unknownKID *string) (any, error) {
	alg := t.Method.Alg()
	switch alg {
	case algHS256:
		if a.secret == nil {
			return nil, keyErrorf("algorithm not allowed: HS256 (no shared secret is configured; accepted: %s)", a.accepted())
		}
		return a.secret, nil
	case algRS256, algES256:
		if len(a.pemKeys) == 0 && !a.jwks {
			return nil, keyErrorf("algorithm not allowed: %s (no public keys are configured; accepted: HS256)", alg)
		}
	default:
		return nil, keyErrorf("algorithm not allowed: %s (accepted: %s)", quoteClip(alg), a.accepted())
	}
	rawKID, hasKID := t.Header["kid"]
	kid, ok := rawKID.(string)
	if hasKID && !ok {
		return nil, keyErrorf("malformed token: kid header is not a string")
	}
	ks := a.keys.Load()
	if kid != "" {
		k, found := ks.byKID[kid]
		if !found && a.jwks {
			a.reloadForKID()
			ks = a.keys.Load()
			k, found = ks.byKID[kid]
		}
		if found {
			if k.alg != alg {
				return nil, keyErrorf("algorithm not allowed: %s token for %s", alg, k.describe())
			}
			return k.key, nil
		}
		cands := ks.forAlg(alg, false)
		if len(cands) == 0 {
			return nil, keyErrorf("unknown key id %s", quoteClip(kid))
		}
		*unknownKID = kid
		return keySetOf(cands), nil
	}
	cands := ks.forAlg(alg, true)
	if len(cands) == 0 {
		return nil, keyErrorf("algorithm not allowed: %s (no %s key is configured; accepted: %s)", alg, keyType(alg), a.accepted())
	}
	return keySetOf(cands), nil
}

func keySetOf(keys []publicKey) jwt.VerificationKeySet {
	var set jwt.VerificationKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, k.key)
	}
	return set
}

func keyType(alg string) string {
	if alg == algES256 {
		return "EC P-256"
	}
	return "RSA"
}

// accepted lists the algorithms the current keys verify.
func (a *Authenticator) accepted() string {
	var algs []string
	if a.secret != nil {
		algs = append(algs, algHS256)
	}
	ks := a.keys.Load()
	for _, alg := range []string{algRS256, algES256} {
		if len(ks.forAlg(alg, true)) > 0 {
			algs = append(algs, alg)
		}
	}
	if len(algs) == 0 {
		return "none"
	}
	return strings.Join(algs, ", ")
}

// unauthorized wraps core.ErrUnauthorized the way adapters expect: they
// send the text after "switchboard/core: unauthorized: " to the client.
func unauthorized(reason string) error {
	return fmt.Errorf("%w: %s", core.ErrUnauthorized, reason)
}

// reason names what was wrong with a token without echoing it (nor any
// library message, which may quote decoded token bytes).
func reason(tok *jwt.Token, err error) string {
	var ke *keyError
	switch {
	case errors.As(err, &ke):
		return ke.msg
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token: " + malformedPart(tok)
	case tok != nil && tok.Method == nil && tok.Header != nil:
		// The parser stops before the key lookup when it does not
		// know the alg at all.
		alg, ok := tok.Header["alg"].(string)
		if !ok {
			return "malformed token: the alg header is missing or not a string"
		}
		return fmt.Sprintf("algorithm not allowed: %s", quoteClip(alg))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future"
	case errors.Is(err, jwt.ErrInvalidType):
		return "malformed token: a registered claim has the wrong type"
	default:
		return "invalid token"
	}
}

// malformedPart says which part of a malformed token failed to decode.
func malformedPart(tok *jwt.Token) string {
	switch {
	case tok == nil:
		return "want three dot-separated base64url segments"
	case tok.Header == nil:
		return "the header is not base64url-encoded JSON"
	case tok.Method == nil:
		return "the claims are not a base64url-encoded JSON object of valid claims"
	default:
		return "the signature is not base64url-encoded"
	}
}

// message is err's text without a core.Error's protocol code prefix.
func message(err error) string {
	var ce *core.Error
	if errors.As(err, &ce) {
		return ce.Message
	}
	return err.Error()
}

// validatePermissions checks both lists of a rooms claim (or of
// Config.Anonymous).
func validatePermissions(subscribe, publish []string) error {
	for _, l := range []struct {
		name     string
		patterns []string
	}{{"subscribe", subscribe}, {"publish", publish}} {
		if len(l.patterns) > MaxPatterns {
			return fmt.Errorf("%s: %d patterns, at most %d allowed", l.name, len(l.patterns), MaxPatterns)
		}
		for i, p := range l.patterns {
			if len(p) > core.MaxRoomLen {
				return fmt.Errorf("%s[%d]: pattern longer than %d bytes", l.name, i, core.MaxRoomLen)
			}
			if err := core.ValidatePattern(p); err != nil {
				return fmt.Errorf("%s[%d]: %s", l.name, i, message(err))
			}
		}
	}
	return nil
}

// parseRooms decodes a rooms claim: an object with optional "subscribe"
// and "publish" arrays of room patterns. A missing list allows nothing;
// any other key, or a null, is refused.
func parseRooms(raw []byte) (*core.Permissions, error) {
	var r struct {
		Subscribe []string `json:"subscribe"`
		Publish   []string `json:"publish"`
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, errors.New(`want an object {"subscribe": [...], "publish": [...]}`)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, errors.New("not a JSON object")
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if k != "subscribe" && k != "publish" {
			return nil, fmt.Errorf("unknown key %s (want subscribe, publish)", quoteClip(k))
		}
	}
	for _, l := range []struct {
		key  string
		list *[]string
	}{{"subscribe", &r.Subscribe}, {"publish", &r.Publish}} {
		v, ok := fields[l.key]
		if !ok {
			continue
		}
		if len(v) == 0 || v[0] != '[' {
			return nil, fmt.Errorf("%s: want an array of room patterns", l.key)
		}
		if err := json.Unmarshal(v, l.list); err != nil {
			return nil, fmt.Errorf("%s: want an array of room patterns (strings)", l.key)
		}
	}
	if r.Subscribe == nil {
		r.Subscribe = []string{}
	}
	if r.Publish == nil {
		r.Publish = []string{}
	}
	if err := validatePermissions(r.Subscribe, r.Publish); err != nil {
		return nil, err
	}
	return &core.Permissions{Subscribe: r.Subscribe, Publish: r.Publish}, nil
}
