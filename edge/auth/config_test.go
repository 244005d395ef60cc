package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/core"
)

// TestNewErrors: a configuration or key source New cannot use fails at
// start, naming what is wrong.
func TestNewErrors(t *testing.T) {
	k := testKeys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ec1)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	good := jwkOf("g", &k.rsa1.PublicKey)
	srv := newJWKSServer(t, jwksOf(good))
	srv404 := newJWKSServer(t, nil)
	srv404.status.Store(http.StatusNotFound)
	badPoint := jwkOf("e", &k.ec1.PublicKey)
	badPoint["y"] = badPoint["x"]
	badN := jwkOf("r", &k.rsa1.PublicKey)
	badN["n"] = "***"
	smallJWK := jwkOf("s", &small.PublicKey)
	oct := map[string]string{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}
	enc := jwkOf("enc", &k.rsa2.PublicKey)
	enc["use"] = "enc"

	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no key source", Config{Audience: "x"}, "no key source: set Secret, PublicKeyFile, JWKSURL or JWKSFile"},
		{"short secret", Config{Secret: []byte("short")}, "Secret: 5 bytes is shorter than 16"},
		{"JWKSURL not http", Config{JWKSURL: "ftp://keys.example/jwks"}, "want an absolute http or https URL"},
		{"JWKSURL relative", Config{JWKSURL: "/jwks.json"}, "want an absolute http or https URL"},
		{"Anonymous bad pattern", Config{Secret: testSecret, Anonymous: &core.Permissions{Subscribe: []string{"a b"}}}, "Anonymous: subscribe[0]: room pattern"},
		{"PublicKeyFile missing", Config{PublicKeyFile: "/nonexistent/keys.pem"}, "PublicKeyFile /nonexistent/keys.pem: open: no such file or directory"},
		{"PublicKeyFile without PEM", Config{PublicKeyFile: writeFile(t, "k.pem", []byte("hello"))}, "no PEM-encoded public key or certificate found"},
		{"PublicKeyFile with a private key", Config{PublicKeyFile: writeFile(t, "k.pem", privPEM)}, `PEM block 1 is a "PRIVATE KEY"; want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE`},
		{"PublicKeyFile with a 1024-bit RSA key", Config{PublicKeyFile: writeFile(t, "k.pem", pemOf(t, &k.ec1.PublicKey, &small.PublicKey))}, "PEM block 2 (PUBLIC KEY): RSA key of 1024 bits, want at least 2048"},
		{"PublicKeyFile with a P-384 key", Config{PublicKeyFile: writeFile(t, "k.pem", pemOf(t, &mustEC384(t).PublicKey))}, "ECDSA key on curve P-384, want P-256"},
		{"PublicKeyFile with a broken block", Config{PublicKeyFile: writeFile(t, "k.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}))}, "PEM block 1 (PUBLIC KEY):"},
		{"JWKSURL 404", Config{JWKSURL: srv404.URL, HTTPClient: srv404.Client()}, "JWKSURL " + srv404.URL + ": HTTP status 404 Not Found"},
		{"JWKSURL unreachable", Config{JWKSURL: "http://127.0.0.1:1/jwks"}, "JWKSURL http://127.0.0.1:1/jwks:"},
		{"JWKSFile missing", Config{JWKSFile: "/nonexistent/jwks.json"}, "JWKSFile /nonexistent/jwks.json: open: no such file or directory"},
		{"JWKS not JSON", Config{JWKSFile: writeFile(t, "j.json", []byte("<html>"))}, "not a JSON Web Key Set"},
		{"JWKS without usable keys", Config{JWKSFile: writeFile(t, "j.json", jwksOf(oct, enc))}, "no usable key (RSA or EC P-256 signing key) among 2"},
		{"JWKS EC point off the curve", Config{JWKSFile: writeFile(t, "j.json", jwksOf(good, badPoint))}, `keys[1] (kid "e"): not a P-256 point`},
		{"JWKS RSA n not base64url", Config{JWKSFile: writeFile(t, "j.json", jwksOf(badN))}, `keys[0] (kid "r"): "n" is not base64url`},
		{"JWKS RSA key too small", Config{JWKSFile: writeFile(t, "j.json", jwksOf(smallJWK))}, `keys[0] (kid "s"): RSA key of 1024 bits`},
		{"JWKS duplicate kid", Config{JWKSFile: writeFile(t, "j.json", jwksOf(good, good))}, `keys[1] (kid "g"): duplicate kid`},
		{"same kid in JWKSURL and JWKSFile", Config{JWKSURL: srv.URL, HTTPClient: srv.Client(), JWKSFile: writeFile(t, "j.json", jwksOf(good))}, `kid "g" is in both JWKSURL and JWKSFile`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(context.Background(), tc.cfg)
			if err == nil {
				_ = a.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant it to mention %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "switchboard/edge/auth: ") {
				t.Fatalf("err = %v, want the package prefix", err)
			}
		})
	}
	t.Run("a key source at fault is named", func(t *testing.T) {
		for _, tc := range cases {
			field := ""
			for _, f := range []string{"PublicKeyFile", "JWKSURL", "JWKSFile"} {
				if strings.HasPrefix(tc.name, f) || strings.HasPrefix(tc.name, "JWKS ") && f == "JWKSFile" {
					field = f
				}
			}
			if field == "" {
				continue
			}
			_, err := New(context.Background(), tc.cfg)
			var se *SourceError
			if !errors.As(err, &se) || se.Field != field {
				t.Errorf("%s: err = %v, want a *SourceError for %s", tc.name, err, field)
			}
		}
	})
	t.Run("Validate wraps ErrInvalidConfig", func(t *testing.T) {
		if err := (Config{}).Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("err = %v", err)
		}
		if err := (Config{Secret: testSecret}).Validate(); err != nil {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("the context bounds the initial load", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := New(ctx, Config{JWKSURL: srv.URL, HTTPClient: srv.Client()})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

// TestCheckFiles: CheckFiles refuses what New would refuse about the
// files and the URL's form, without fetching the URL.
func TestCheckFiles(t *testing.T) {
	k := testKeys()
	pemFile := writeFile(t, "k.pem", pemOf(t, &k.rsa1.PublicKey))
	jwksFile := writeFile(t, "j.json", jwksOf(jwkOf("g", &k.rsa1.PublicKey)))
	cases := []struct {
		name  string
		cfg   Config
		field string // "" for no error
	}{
		{"good files", Config{PublicKeyFile: pemFile, JWKSFile: jwksFile}, ""},
		{"unreachable URL is not fetched", Config{JWKSURL: "http://127.0.0.1:1/jwks"}, ""},
		{"PEM file missing", Config{PublicKeyFile: "/nonexistent/keys.pem"}, "PublicKeyFile"},
		{"PEM file without keys", Config{PublicKeyFile: writeFile(t, "x.pem", []byte("hello"))}, "PublicKeyFile"},
		{"JWKS file missing", Config{JWKSFile: "/nonexistent/jwks.json"}, "JWKSFile"},
		{"JWKS file not a key set", Config{JWKSFile: writeFile(t, "x.json", []byte(`{"issuer":"x"}`))}, "JWKSFile"},
		{"URL not http", Config{JWKSURL: "ftp://keys.example/jwks"}, "JWKSURL"},
		{"URL relative", Config{JWKSURL: "/jwks.json"}, "JWKSURL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.CheckFiles()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			var se *SourceError
			if !errors.As(err, &se) || se.Field != tc.field {
				t.Fatalf("err = %v, want a *SourceError for %s", err, tc.field)
			}
			if !strings.HasPrefix(err.Error(), "switchboard/edge/auth: ") {
				t.Fatalf("err = %v, want the package prefix", err)
			}
		})
	}
}

// TestKeySources: PEM files with several keys and certificates, JWKS files,
// and sets that mix usable and skipped keys.
func TestKeySources(t *testing.T) {
	k := testKeys()
	cert := selfSigned(t, k.ec2)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa2.PublicKey)})
	pemFile := writeFile(t, "mixed.pem", append(append(pemOf(t, &k.rsa1.PublicKey, &k.ec1.PublicKey), pkcs1...), cert...))
	skipped := map[string]string{"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AAAA"}
	p384 := map[string]string{"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AAAA", "y": "AAAA"}
	rs512 := jwkOf("rs512", &k.rsa1.PublicKey)
	rs512["alg"] = "RS512"
	jwksFile := writeFile(t, "jwks.json", jwksOf(skipped, p384, rs512, jwkOf("f1", &k.ec1.PublicKey)))

	a := newAuth(t, Config{PublicKeyFile: pemFile, JWKSFile: jwksFile})
	for _, tc := range []struct {
		name   string
		token  string
		reason string
	}{
		{"PKIX RSA", mint(t, jwt.SigningMethodRS256, k.rsa1, "", stdClaims(nil)), ""},
		{"PKIX EC", mint(t, jwt.SigningMethodES256, k.ec1, "", stdClaims(nil)), ""},
		{"PKCS #1 RSA", mint(t, jwt.SigningMethodRS256, k.rsa2, "", stdClaims(nil)), ""},
		{"certificate EC", mint(t, jwt.SigningMethodES256, k.ec2, "", stdClaims(nil)), ""},
		{"JWKS file by kid", mint(t, jwt.SigningMethodES256, k.ec1, "f1", stdClaims(nil)), ""},
		{"skipped JWK is unknown", mint(t, jwt.SigningMethodRS256, mustRSA(t), "rs512", stdClaims(nil)), `unknown key id "rs512" (and no key from PublicKeyFile verifies the token)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := a.Authenticate(context.Background(), core.Credentials{Token: tc.token})
			if tc.reason != "" {
				checkRejected(t, tc.token, err, tc.reason)
				return
			}
			if err != nil || id.User != "alice" {
				t.Fatalf("id=%+v err=%v", id, err)
			}
		})
	}
}

func selfSigned(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "issuer.example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
