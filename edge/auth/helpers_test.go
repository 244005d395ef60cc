package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/core"
)

// quiet discards the Authenticator's logs in tests.
var quiet = slog.New(slog.DiscardHandler)

// testSecret is the HS256 secret of the tests.
var testSecret = []byte("0123456789abcdef0123456789abcdef")

// t0 is the fixed "now" of the tests' clock.
var t0 = time.Unix(1_800_000_000, 0)

// Keys are generated once per test binary: RSA generation is slow.
var testKeys = sync.OnceValue(func() (k struct {
	rsa1, rsa2 *rsa.PrivateKey
	ec1, ec2   *ecdsa.PrivateKey
}) {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var err error
	k.rsa1, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.ec1, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec2, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	return k
})

// mint signs claims with method and key, setting the kid header if
// non-empty.
func mint(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pemOf encodes public keys (PKIX) as one PEM file's content.
func pemOf(t testing.TB, keys ...any) []byte {
	t.Helper()
	var out []byte
	for _, k := range keys {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	return out
}

// writeFile writes data to a fresh file in t's temporary directory.
func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkOf is the JWK of a public key.
func jwkOf(kid string, pub any) map[string]string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
			"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		raw, err := k.Bytes()
		if err != nil {
			panic(err)
		}
		return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256",
			"x": b64(raw[1:33]), "y": b64(raw[33:65])}
	}
	panic("unsupported key type")
}

// jwksOf is a JSON Web Key Set document.
func jwksOf(keys ...map[string]string) []byte {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	return b
}

// jwksServer serves a key set on 127.0.0.1 that the test can swap, and
// counts the fetches.
type jwksServer struct {
	*httptest.Server
	doc     atomic.Pointer[[]byte]
	status  atomic.Int32 // 0: 200
	fetches atomic.Int32
}

func newJWKSServer(t testing.TB, doc []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(doc)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		if st := s.status.Load(); st != 0 {
			http.Error(w, "unavailable", int(st))
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(*s.doc.Load())
	}))
	t.Cleanup(func() {
		s.Client().CloseIdleConnections()
		s.Close()
	})
	return s
}

func (s *jwksServer) set(doc []byte) { s.doc.Store(&doc) }

// newAuth builds an Authenticator on the fixed clock, closed at cleanup.
func newAuth(t testing.TB, cfg Config) *Authenticator {
	t.Helper()
	if cfg.now == nil {
		cfg.now = func() time.Time { return t0 }
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// claims returns the registered claims of a valid token at t0, with extra
// merged in (a nil value deletes the claim).
func stdClaims(extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "alice", "exp": t0.Add(time.Hour).Unix(), "iat": t0.Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// checkRejected fails unless err wraps core.ErrUnauthorized, its reason
// (the text adapters send to clients) contains want, and it does not
// contain the token.
func checkRejected(t testing.TB, token string, err error, want string) {
	t.Helper()
	if !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("err = %v, want one wrapping core.ErrUnauthorized", err)
	}
	msg := strings.TrimPrefix(err.Error(), core.ErrUnauthorized.Error()+": ")
	if msg == err.Error() {
		t.Fatalf("err = %q, want %q followed by a reason", err, core.ErrUnauthorized.Error()+": ")
	}
	if !strings.Contains(msg, want) {
		t.Fatalf("reason %q, want it to mention %q", msg, want)
	}
	if leaks(token, err.Error()) {
		t.Fatalf("error %q contains the token", err)
	}
}

// leaks reports whether msg contains the token or a long piece of it
// (any of its dot-separated segments longer than 8 bytes).
func leaks(token, msg string) bool {
	if len(token) > 8 && strings.Contains(msg, token) {
		return true
	}
	for _, seg := range strings.Split(token, ".") {
		if len(seg) > 8 && strings.Contains(msg, seg) {
			return true
		}
	}
	return false
}

func mustRSA(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustEC384(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustDER(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
