package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/core"
)

// TestAuthenticate runs every verification rule against an Authenticator
// with all three key sources: the secret, a PEM file (rsa1, ec1, no kid)
// and a JWKS served over HTTP (rsa2 as "r2", ec2 as "e2").
func TestAuthenticate(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, jwksOf(jwkOf("r2", &k.rsa2.PublicKey), jwkOf("e2", &k.ec2.PublicKey)))
	a := newAuth(t, Config{
		Secret:        testSecret,
		PublicKeyFile: writeFile(t, "keys.pem", pemOf(t, &k.rsa1.PublicKey, &k.ec1.PublicKey)),
		JWKSURL:       srv.URL,
		HTTPClient:    srv.Client(),
		Audience:      "switchboard",
		Issuer:        "https://issuer.example",
		Leeway:        30 * time.Second,
		kidRefetch:    time.Hour, // one unknown-kid reload for the whole table
	})
	std := func(extra jwt.MapClaims) jwt.MapClaims {
		c := stdClaims(jwt.MapClaims{"aud": "switchboard", "iss": "https://issuer.example"})
		for k, v := range extra {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	hs := func(extra jwt.MapClaims) string { return mint(t, jwt.SigningMethodHS256, testSecret, "", std(extra)) }
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	header := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) }
	hsPayload := strings.Split(hs(nil), ".")[1]

	type want struct {
		user    string
		perms   *core.Permissions
		expires time.Time
	}
	valid := want{user: "alice", expires: t0.Add(time.Hour + 30*time.Second)}
	cases := []struct {
		name   string
		token  string
		want   want   // when reason is ""
		reason string // the reason the error must mention
	}{
		// Each key source and algorithm.
		{"HS256 secret", hs(nil), valid, ""},
		{"RS256 PEM key, no kid", mint(t, jwt.SigningMethodRS256, k.rsa1, "", std(nil)), valid, ""},
		{"ES256 PEM key, no kid", mint(t, jwt.SigningMethodES256, k.ec1, "", std(nil)), valid, ""},
		{"RS256 JWKS key by kid", mint(t, jwt.SigningMethodRS256, k.rsa2, "r2", std(nil)), valid, ""},
		{"ES256 JWKS key by kid", mint(t, jwt.SigningMethodES256, k.ec2, "e2", std(nil)), valid, ""},
		{"RS256 JWKS key, no kid", mint(t, jwt.SigningMethodRS256, k.rsa2, "", std(nil)), valid, ""},
		{"HS256 ignores kid", mint(t, jwt.SigningMethodHS256, testSecret, "r2", std(nil)), valid, ""},
		{"unknown kid falls back to PEM keys", mint(t, jwt.SigningMethodES256, k.ec1, "pem-only", std(nil)), valid, ""},

		// Signatures and keys.
		{"bad HS256 signature", mint(t, jwt.SigningMethodHS256, []byte("another-secret-of-32-bytes-long!"), "", std(nil)), want{}, "bad signature"},
		{"RS256 by an unknown key, no kid", mint(t, jwt.SigningMethodRS256, mustRSA(t), "", std(nil)), want{}, "bad signature"},
		{"RS256 by the wrong key for kid", mint(t, jwt.SigningMethodRS256, k.rsa1, "r2", std(nil)), want{}, "bad signature"},
		{"tampered payload", tamper(hs(nil), hsPayload, base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory","aud":"switchboard","iss":"https://issuer.example"}`))), want{}, "bad signature"},
		{"stripped signature", strings.Join(strings.Split(hs(nil), ".")[:2], ".") + ".", want{}, "bad signature"},
		{"unknown kid, no PEM key of the type", mint(t, jwt.SigningMethodRS256, k.rsa2, "nope", std(nil)), want{}, `unknown key id "nope"`},

		// Algorithms.
		{"alg none", mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", std(nil)), want{}, `algorithm not allowed: "none"`},
		{"alg HS384", mint(t, jwt.SigningMethodHS384, testSecret, "", std(nil)), want{}, `algorithm not allowed: "HS384"`},
		{"alg RS512", mint(t, jwt.SigningMethodRS512, k.rsa1, "", std(nil)), want{}, `algorithm not allowed: "RS512"`},
		{"alg PS256", mint(t, jwt.SigningMethodPS256, k.rsa1, "", std(nil)), want{}, `algorithm not allowed: "PS256"`},
		{"alg ES384", mint(t, jwt.SigningMethodES384, mustEC384(t), "", std(nil)), want{}, `algorithm not allowed: "ES384"`},
		{"alg EdDSA", mint(t, jwt.SigningMethodEdDSA, edKey, "", std(nil)), want{}, `algorithm not allowed: "EdDSA"`},
		{"alg unknown to the library", header(`{"alg":"XX1","typ":"JWT"}`) + "." + hsPayload + ".c2ln", want{}, `algorithm not allowed: "XX1"`},
		{"alg missing", header(`{"typ":"JWT"}`) + "." + hsPayload + ".c2ln", want{}, "alg header is missing"},
		{"ES256 token for an RSA kid", mint(t, jwt.SigningMethodES256, k.ec2, "r2", std(nil)), want{}, `algorithm not allowed: ES256 token for key "r2" (RSA)`},
		{"RS256 token for an EC kid", mint(t, jwt.SigningMethodRS256, k.rsa2, "e2", std(nil)), want{}, `algorithm not allowed: RS256 token for key "e2" (EC P-256)`},
		{"kid not a string", mint(t, jwt.SigningMethodRS256, k.rsa2, "", std(nil)) /* replaced below */, want{}, "kid header is not a string"},

		// Time claims (now is t0, leeway 30s).
		{"expired", hs(jwt.MapClaims{"exp": t0.Add(-time.Minute).Unix()}), want{}, "token expired"},
		{"expired within leeway", hs(jwt.MapClaims{"exp": t0.Add(-10 * time.Second).Unix()}), want{user: "alice", expires: t0.Add(20 * time.Second)}, ""},
		{"no exp: no expiry", hs(jwt.MapClaims{"exp": nil}), want{user: "alice"}, ""},
		{"not valid yet", hs(jwt.MapClaims{"nbf": t0.Add(time.Minute).Unix()}), want{}, "token not valid yet"},
		{"nbf within leeway", hs(jwt.MapClaims{"nbf": t0.Add(20 * time.Second).Unix()}), valid, ""},
		{"issued in the future", hs(jwt.MapClaims{"iat": t0.Add(time.Minute).Unix()}), want{}, "token issued in the future"},
		{"iat within leeway", hs(jwt.MapClaims{"iat": t0.Add(20 * time.Second).Unix()}), valid, ""},
		{"no iat", hs(jwt.MapClaims{"iat": nil}), valid, ""},
		{"exp not a number", hs(jwt.MapClaims{"exp": "tomorrow"}), want{}, "malformed token"},

		// Audience and issuer.
		{"aud in a list", hs(jwt.MapClaims{"aud": []string{"other", "switchboard"}}), valid, ""},
		{"wrong audience", hs(jwt.MapClaims{"aud": "other"}), want{}, "wrong audience"},
		{"no audience", hs(jwt.MapClaims{"aud": nil}), want{}, "wrong audience: the token has no aud claim"},
		{"wrong issuer", hs(jwt.MapClaims{"iss": "https://evil.example"}), want{}, "wrong issuer"},
		{"no issuer", hs(jwt.MapClaims{"iss": nil}), want{}, "wrong issuer: the token has no iss claim"},

		// Subject.
		{"no sub", hs(jwt.MapClaims{"sub": nil}), want{}, "sub claim invalid: missing or empty"},
		{"empty sub", hs(jwt.MapClaims{"sub": ""}), want{}, "sub claim invalid"},
		{"sub with a space", hs(jwt.MapClaims{"sub": "a b"}), want{}, "sub claim invalid"},
		{"sub too long", hs(jwt.MapClaims{"sub": strings.Repeat("u", core.MaxUserLen+1)}), want{}, "sub claim invalid: user id longer than 128 bytes"},
		{"sub not a string", hs(jwt.MapClaims{"sub": 42}), want{}, "malformed token"},

		// Rooms.
		{"rooms", hs(jwt.MapClaims{"rooms": map[string]any{"subscribe": []string{"chat:*", "user:42"}, "publish": []string{"chat:*"}}}),
			want{user: "alice", expires: valid.expires, perms: &core.Permissions{Subscribe: []string{"chat:*", "user:42"}, Publish: []string{"chat:*"}}}, ""},
		{"rooms without publish: publish nothing", hs(jwt.MapClaims{"rooms": map[string]any{"subscribe": []string{"a?"}}}),
			want{user: "alice", expires: valid.expires, perms: &core.Permissions{Subscribe: []string{"a?"}, Publish: []string{}}}, ""},
		{"empty rooms: nothing", hs(jwt.MapClaims{"rooms": map[string]any{}}),
			want{user: "alice", expires: valid.expires, perms: &core.Permissions{Subscribe: []string{}, Publish: []string{}}}, ""},
		{"256 patterns", hs(jwt.MapClaims{"rooms": map[string]any{"subscribe": repeat("r*", MaxPatterns)}}),
			want{user: "alice", expires: valid.expires, perms: &core.Permissions{Subscribe: repeat("r*", MaxPatterns), Publish: []string{}}}, ""},
		{"257 patterns", hs(jwt.MapClaims{"rooms": map[string]any{"publish": repeat("r*", MaxPatterns+1)}}), want{}, "rooms claim invalid: publish: 257 patterns, at most 256 allowed"},
		{"rooms null", hs(jwt.MapClaims{"rooms": jsonNull{}}), want{}, "rooms claim invalid: want an object"},
		{"rooms a list", hs(jwt.MapClaims{"rooms": []string{"chat:*"}}), want{}, "rooms claim invalid: want an object"},
		{"rooms unknown key", hs(jwt.MapClaims{"rooms": map[string]any{"subscribes": []string{"a"}}}), want{}, `rooms claim invalid: unknown key "subscribes"`},
		{"subscribe a string", hs(jwt.MapClaims{"rooms": map[string]any{"subscribe": "chat:*"}}), want{}, "rooms claim invalid: subscribe: want an array"},
		{"subscribe null", hs(jwt.MapClaims{"rooms": map[string]any{"subscribe": nil}}), want{}, "rooms claim invalid: subscribe: want an array"},
		{"subscribe numbers", hs(jwt.MapClaims{"rooms": map[string]any{"subscribe": []int{1}}}), want{}, "rooms claim invalid: subscribe: want an array of room patterns (strings)"},
		{"bad pattern", hs(jwt.MapClaims{"rooms": map[string]any{"subscribe": []string{"ok", "no spaces"}}}), want{}, `rooms claim invalid: subscribe[1]: room pattern "no spaces"`},
		{"empty pattern", hs(jwt.MapClaims{"rooms": map[string]any{"publish": []string{""}}}), want{}, "rooms claim invalid: publish[0]: room pattern"},
		{"long pattern", hs(jwt.MapClaims{"rooms": map[string]any{"publish": []string{strings.Repeat("p", 129)}}}), want{}, "rooms claim invalid: publish[0]: pattern longer than 128 bytes"},

		// Malformed tokens.
		{"one segment", "abcdefghijklmnop", want{}, "malformed token: want three dot-separated"},
		{"four segments", hs(nil) + ".abc", want{}, "malformed token: want three dot-separated"},
		{"header not base64", "!!!!." + hsPayload + ".c2ln", want{}, "malformed token: the header is not base64url-encoded JSON"},
		{"header not JSON", header("not json") + "." + hsPayload + ".c2ln", want{}, "malformed token: the header"},
		{"claims not an object", header(`{"alg":"HS256"}`) + "." + header(`[1,2]`) + ".c2ln", want{}, "malformed token: the claims"},
		{"claims not base64", header(`{"alg":"HS256"}`) + ".@@@@.c2ln", want{}, "malformed token: the claims"},
		{"signature not base64", header(`{"alg":"HS256"}`) + "." + hsPayload + ".@@@", want{}, "malformed token: the signature"},
		{"padded base64", strings.Replace(hs(nil), ".", "==.", 1), want{}, "malformed token"},
		{"too long", strings.Repeat("a", MaxTokenLen+1), want{}, "malformed token: longer than 65536 bytes"},
	}
	// A kid that is a number, signed properly.
	for i := range cases {
		if cases[i].name == "kid not a string" {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, std(nil))
			tok.Header["kid"] = 7
			s, err := tok.SignedString(k.rsa2)
			if err != nil {
				t.Fatal(err)
			}
			cases[i].token = s
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := a.Authenticate(context.Background(), core.Credentials{Token: tc.token, User: "claimed"})
			if tc.reason != "" {
				checkRejected(t, tc.token, err, tc.reason)
				if !reflect.DeepEqual(id, core.Identity{}) {
					t.Fatalf("rejected, yet identity %+v", id)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			w := core.Identity{User: tc.want.user, Permissions: tc.want.perms, Expires: tc.want.expires}
			if !reflect.DeepEqual(id, w) {
				t.Fatalf("identity %+v (perms %+v), want %+v (perms %+v)", id, id.Permissions, w, w.Permissions)
			}
		})
	}
}

// jsonNull marshals as null (a nil in jwt.MapClaims would too, but
// stdClaims() treats nil as "delete").
type jsonNull struct{}

func (jsonNull) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func tamper(token, old, new string) string { return strings.Replace(token, old, new, 1) }

// TestAlgorithmConfusion: a token must not choose how its key is used. The
// classic attack signs an HS256 token with the server's RSA public key
// (its PEM bytes) as the HMAC secret.
func TestAlgorithmConfusion(t *testing.T) {
	k := testKeys()
	pemBytes := pemOf(t, &k.rsa1.PublicKey)
	pemFile := writeFile(t, "rsa.pem", pemBytes)
	srv := newJWKSServer(t, jwksOf(jwkOf("r1", &k.rsa1.PublicKey)))
	forged := func(kid string) string {
		return mint(t, jwt.SigningMethodHS256, pemBytes, kid, stdClaims(jwt.MapClaims{"sub": "admin"}))
	}
	der := mustDER(t, &k.rsa1.PublicKey)
	cases := []struct {
		name   string
		cfg    Config
		token  string
		reason string
	}{
		{"PEM key only: HS256 refused", Config{PublicKeyFile: pemFile}, forged(""), "algorithm not allowed: HS256 (no shared secret is configured; accepted: RS256)"},
		{"JWKS only: HS256 with the key's kid refused", Config{JWKSURL: srv.URL, HTTPClient: srv.Client()}, forged("r1"), "algorithm not allowed: HS256"},
		{"JWKS only: HS256 signed with the DER key refused", Config{JWKSURL: srv.URL, HTTPClient: srv.Client()},
			mint(t, jwt.SigningMethodHS256, der, "r1", stdClaims(nil)), "algorithm not allowed: HS256"},
		{"secret and PEM key: HS256 checked against the secret only", Config{Secret: testSecret, PublicKeyFile: pemFile}, forged(""), "bad signature"},
		{"secret only: RS256 refused", Config{Secret: testSecret}, mint(t, jwt.SigningMethodRS256, k.rsa1, "", stdClaims(nil)), "algorithm not allowed: RS256 (no public keys are configured; accepted: HS256)"},
		{"RSA key only: ES256 refused", Config{PublicKeyFile: pemFile}, mint(t, jwt.SigningMethodES256, k.ec1, "", stdClaims(nil)), "algorithm not allowed: ES256 (no EC P-256 key is configured; accepted: RS256)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuth(t, tc.cfg)
			_, err := a.Authenticate(context.Background(), core.Credentials{Token: tc.token})
			checkRejected(t, tc.token, err, tc.reason)
		})
	}
}

// TestAnonymous: without a token, Anonymous decides.
func TestAnonymous(t *testing.T) {
	t.Run("nil: token required", func(t *testing.T) {
		a := newAuth(t, Config{Secret: testSecret})
		_, err := a.Authenticate(context.Background(), core.Credentials{User: "alice"})
		checkRejected(t, "", err, "token required")
	})
	t.Run("set: anonymous identity with those permissions", func(t *testing.T) {
		cfg := Config{Secret: testSecret, Anonymous: &core.Permissions{Subscribe: []string{"public:*"}, Publish: []string{}}}
		a := newAuth(t, cfg)
		cfg.Anonymous.Subscribe[0] = "*" // New copied them
		id, err := a.Authenticate(context.Background(), core.Credentials{User: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		want := core.Identity{Permissions: &core.Permissions{Subscribe: []string{"public:*"}, Publish: []string{}}}
		if !reflect.DeepEqual(id, want) {
			t.Fatalf("identity %+v (perms %+v), want %+v", id, id.Permissions, want.Permissions)
		}
		// A token, when given, is still verified.
		tok := mint(t, jwt.SigningMethodHS256, []byte("another-secret-of-32-bytes-long!"), "", stdClaims(nil))
		_, err = a.Authenticate(context.Background(), core.Credentials{Token: tok})
		checkRejected(t, tok, err, "bad signature")
	})
}

// TestHS256Wrapper: the constructor edge/server uses.
func TestHS256Wrapper(t *testing.T) {
	now := time.Now()
	tok := func(exp time.Time) string {
		return mint(t, jwt.SigningMethodHS256, testSecret, "", jwt.MapClaims{"sub": "alice", "exp": exp.Unix(),
			"rooms": map[string]any{"subscribe": []string{"chat:*"}}})
	}
	a := HS256(testSecret, 5*time.Second)
	id, err := a.Authenticate(context.Background(), core.Credentials{Token: tok(now.Add(time.Hour))})
	if err != nil || id.User != "alice" || !id.Permissions.CanSubscribe("chat:1") || id.Permissions.CanSubscribe("x") {
		t.Fatalf("id=%+v err=%v", id, err)
	}
	if _, err := a.Authenticate(context.Background(), core.Credentials{Token: tok(now.Add(-3 * time.Second))}); err != nil {
		t.Fatalf("within the 5s leeway: %v", err)
	}
	// Leeway 0 means none (not the 30s default).
	s := tok(now.Add(-3 * time.Second))
	_, err = HS256(testSecret, 0).Authenticate(context.Background(), core.Credentials{Token: s})
	checkRejected(t, s, err, "token expired")
	// A secret New refuses rejects everything, without saying why to clients.
	_, err = HS256([]byte("short"), time.Second).Authenticate(context.Background(), core.Credentials{Token: tok(now.Add(time.Hour))})
	checkRejected(t, "", err, "misconfigured")
}
