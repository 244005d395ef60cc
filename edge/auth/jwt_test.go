package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/core"
)

const secret = "0123456789abcdef0123456789abcdef"

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHS256(t *testing.T) {
	a := HS256([]byte(secret), 5*time.Second)
	now := time.Now()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	claims := func(sub string, exp, nbf time.Time) jwt.RegisteredClaims {
		c := jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(exp)}
		if !nbf.IsZero() {
			c.NotBefore = jwt.NewNumericDate(nbf)
		}
		return c
	}
	hour := now.Add(time.Hour)
	cases := []struct {
		name, token, user, reason string
	}{
		{"valid", sign(t, jwt.SigningMethodHS256, []byte(secret), claims("alice", hour, time.Time{})), "alice", ""},
		{"within leeway", sign(t, jwt.SigningMethodHS256, []byte(secret), claims("bob", now.Add(-2*time.Second), time.Time{})), "bob", ""},
		{"expired", sign(t, jwt.SigningMethodHS256, []byte(secret), claims("alice", now.Add(-time.Minute), time.Time{})), "", "token expired"},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, []byte(secret), claims("alice", hour, now.Add(time.Minute))), "", "not valid yet"},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-entirely-123"), claims("alice", hour, time.Time{})), "", "bad signature"},
		{"other algorithm", sign(t, jwt.SigningMethodES256, ec, claims("alice", hour, time.Time{})), "", "algorithm not allowed"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("alice", hour, time.Time{})), "", "algorithm not allowed"},
		{"missing", "", "", "token required"},
		{"malformed", "abc.def", "", "malformed"},
		{"bad sub", sign(t, jwt.SigningMethodHS256, []byte(secret), claims("a b", hour, time.Time{})), "", "sub claim"},
		{"empty sub", sign(t, jwt.SigningMethodHS256, []byte(secret), claims("", hour, time.Time{})), "", "sub claim"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := a.Authenticate(context.Background(), core.Credentials{Token: tc.token, User: "ignored"})
			if tc.reason == "" {
				if err != nil || id.User != tc.user {
					t.Fatalf("id=%+v err=%v, want user %q", id, err, tc.user)
				}
				return
			}
			if !errors.Is(err, core.ErrUnauthorized) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want ErrUnauthorized mentioning %q", err, tc.reason)
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Fatal("error echoes the token")
			}
		})
	}
}
