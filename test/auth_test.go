package test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/config"
)

// roomClaims is a token's claims with the rooms permission claim.
type roomClaims struct {
	jwt.RegisteredClaims
	Rooms map[string][]string `json:"rooms,omitempty"`
}

func signClaims(t *testing.T, method jwt.SigningMethod, key any, c roomClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJWTRoomPermissionsEveryTransport: the token's rooms claim decides
// what a connection may subscribe and publish to, on WebSocket, SSE,
// long-poll and /send alike; violations are forbidden errors, never
// disconnects.
func TestJWTRoomPermissionsEveryTransport(t *testing.T) {
	const secret = "permission-test-secret-0123456789"
	e := startEdge(t, func(c *config.Config) { c.Auth.Secret = []byte(secret) })
	tok := signClaims(t, jwt.SigningMethodHS256, []byte(secret), roomClaims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "pat", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Rooms:            map[string][]string{"subscribe": {"chat:*"}, "publish": {"chat:general"}},
	})

	// WebSocket.
	c, w := connect(t, e.url(q("token", tok, "rooms", "chat:a,secret")))
	if strings.Join(w.Rooms, ",") != "chat:a" {
		t.Fatalf("welcome rooms %v", w.Rooms)
	}
	if msg := c.expectError(core.CodeForbidden, ""); !strings.Contains(msg, "secret") {
		t.Fatalf("forbidden message %q", msg)
	}
	c.send(`{"v":1,"type":"publish","room":"chat:a","data":1,"ref":"p1"}`)
	c.expectError(core.CodeForbidden, "p1")
	c.send(`{"v":1,"type":"join","room":"admin","ref":"j1"}`)
	c.expectError(core.CodeForbidden, "j1")
	c.send(`{"v":1,"type":"join","room":"chat:general","ref":"j2"}`)
	c.expect(core.TypeAck)
	c.send(`{"v":1,"type":"publish","room":"chat:general","data":1,"ref":"p2"}`)
	c.ackAnd(core.TypeMessage)

	// POST /send: forbidden is 403.
	status, replies := e.post(t, q("rooms", "secret"), `{"v":1,"type":"publish","room":"secret","data":1}`, "Authorization", "Bearer "+tok)
	if status != http.StatusForbidden || replyCode(replies[0]) != core.CodeForbidden {
		t.Fatalf("/send outside permissions: %d %s", status, replies[0].Encode())
	}
	status, _ = e.post(t, q("rooms", "chat:general"), `{"v":1,"type":"publish","room":"chat:general","data":2}`, "Authorization", "Bearer "+tok)
	if status != http.StatusOK {
		t.Fatalf("/send inside permissions: %d", status)
	}

	// SSE: the refused room is an error event after the welcome.
	s := openSSE(t, e.sseURL(q("token", tok, "rooms", "chat:b,secret")), nil)
	if w := s.welcome(); strings.Join(w.Rooms, ",") != "chat:b" {
		t.Fatalf("sse welcome rooms %v", w.Rooms)
	}
	if env := s.expect(core.TypeError); replyCode(env) != core.CodeForbidden {
		t.Fatalf("sse: %s", env.Encode())
	}

	// Long-poll: the refused room is in errors.
	var r struct {
		Errors []json.RawMessage `json:"errors"`
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.addr+"/poll?rooms=secret&wait=0", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != 200 || len(r.Errors) != 1 || !strings.Contains(string(r.Errors[0]), `"forbidden"`) {
		t.Fatalf("poll: %d %s %v", resp.StatusCode, r.Errors, err)
	}
}

// TestRS256PublicKeyAndAlgConfusion: --jwt-public-key accepts RS256
// tokens from the matching private key, and refuses an HS256 token
// "signed" with the public key's PEM bytes (the classic confusion).
func TestRS256PublicKeyAndAlgConfusion(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	file := filepath.Join(t.TempDir(), "pub.pem")
	if err := os.WriteFile(file, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	e := startEdge(t, func(c *config.Config) { c.Auth.PublicKeyFile, c.Auth.Issuer = file, "https://id.example" })
	claims := roomClaims{RegisteredClaims: jwt.RegisteredClaims{Subject: "rsa-user", Issuer: "https://id.example", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}

	_, w := connect(t, e.url(q("token", signClaims(t, jwt.SigningMethodRS256, key, claims))))
	if w.User != "rsa-user" {
		t.Fatalf("user %q", w.User)
	}
	for name, tok := range map[string]string{
		"hs256 with the public key as secret": signClaims(t, jwt.SigningMethodHS256, pemBytes, claims),
		"wrong issuer": signClaims(t, jwt.SigningMethodRS256, key, roomClaims{RegisteredClaims: jwt.RegisteredClaims{
			Subject: "rsa-user", Issuer: "https://evil.example", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}),
	} {
		if code := dial(t, e.url(q("token", tok))).read().closed(); code != 4001 {
			t.Errorf("%s: close %d, want 4001", name, code)
		}
	}
	if strings.Contains(e.logs.String(), "eyJ") {
		t.Error("a token appears in the logs")
	}
}

// TestAnonymousPolicy: in production mode a connection without a token is
// refused (4001) unless --anon-subscribe/--anon-publish admit it, and then
// only within those rooms.
func TestAnonymousPolicy(t *testing.T) {
	const secret = "anonymous-test-secret-0123456789"
	strict := startEdge(t, func(c *config.Config) { c.Auth.Secret = []byte(secret) })
	if code := dial(t, strict.url(q("user", "mallory"))).read().closed(); code != 4001 {
		t.Fatalf("no token, no anonymous policy: close %d, want 4001", code)
	}
	open := startEdge(t, func(c *config.Config) {
		c.Auth.Secret = []byte(secret)
		c.Auth.Anonymous = &core.Permissions{Subscribe: []string{"public:*"}}
	})
	c, w := connect(t, open.url(q("user", "mallory", "rooms", "public:news")))
	if !strings.HasPrefix(w.User, "anon-") || strings.Join(w.Rooms, ",") != "public:news" {
		t.Fatalf("anonymous welcome %+v (?user= must be ignored)", w)
	}
	c.send(`{"v":1,"type":"join","room":"private","ref":"j"}`)
	c.expectError(core.CodeForbidden, "j")
	c.send(`{"v":1,"type":"publish","room":"public:news","data":1,"ref":"p"}`)
	c.expectError(core.CodeForbidden, "p")
}
