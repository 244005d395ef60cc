package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard-dev/switchboard/core"
)

// FuzzAuthenticate signs arbitrary claim bytes with the HS256 secret (so
// they get past the signature to the claim checks) and also feeds the raw
// string as a token. Whatever the input: no panic, every error wraps
// core.ErrUnauthorized without echoing the token, and an accepted identity
// has a valid user id and valid, bounded room patterns. The seed corpus of
// malformed inputs is in testdata/fuzz/FuzzAuthenticate; run longer with
// go test -run '^$' -fuzz FuzzAuthenticate ./edge/auth/.
func FuzzAuthenticate(f *testing.F) {
	for _, seed := range []struct {
		claims string
		raw    string
	}{
		{`{"sub":"alice","exp":1800003600}`, ""},
		{`{"sub":"alice","rooms":{"subscribe":["chat:*"],"publish":[]}}`, "eyJhbGciOiJIUzI1NiJ9.e30.sig"},
		{`{"sub":"alice","rooms":null}`, "a.b.c"},
		{`{"sub":"alice","iat":1900000000}`, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."},
	} {
		f.Add([]byte(seed.claims), seed.raw)
	}
	a := newAuth(f, Config{Secret: testSecret})
	header := b64([]byte(`{"alg":"HS256","typ":"JWT"}`))
	f.Fuzz(func(t *testing.T, claims []byte, raw string) {
		signed := header + "." + b64(claims)
		mac := hmac.New(sha256.New, testSecret)
		mac.Write([]byte(signed))
		checkAuthenticate(t, a, signed+"."+b64(mac.Sum(nil)))
		checkAuthenticate(t, a, raw)
	})
}

func checkAuthenticate(t *testing.T, a *Authenticator, token string) {
	t.Helper()
	id, err := a.Authenticate(context.Background(), core.Credentials{Token: token})
	if err != nil {
		if !errors.Is(err, core.ErrUnauthorized) {
			t.Fatalf("err = %v, want one wrapping core.ErrUnauthorized", err)
		}
		// A token-shaped input (two dots) of some length must not appear
		// in the error; shorter strings may coincide with its fixed text.
		if len(token) >= 16 && strings.Count(token, ".") == 2 && strings.Contains(err.Error(), token) {
			t.Fatalf("error %q contains the token", err)
		}
		if !reflect.DeepEqual(id, core.Identity{}) {
			t.Fatalf("rejected, yet identity %+v", id)
		}
		return
	}
	if err := core.ValidateUser(id.User); err != nil {
		t.Fatalf("accepted an invalid user id %q: %v", id.User, err)
	}
	if p := id.Permissions; p != nil {
		for _, list := range [][]string{p.Subscribe, p.Publish} {
			if len(list) > MaxPatterns {
				t.Fatalf("accepted %d patterns", len(list))
			}
			for _, pat := range list {
				if err := core.ValidatePattern(pat); err != nil {
					t.Fatalf("accepted an invalid pattern: %v", err)
				}
			}
		}
	}
}
