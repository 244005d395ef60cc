package auth

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/core"
)

// waitFor bounds every wait on an event; it is never a synchronisation
// delay.
const waitFor = 10 * time.Second

// TestJWKSRotation: the issuer replaces its key set; a token with the new
// kid makes the Authenticator reload at once, at most once per interval,
// and the old kid stops working.
func TestJWKSRotation(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, jwksOf(jwkOf("old", &k.rsa1.PublicKey)))
	var now atomic.Int64
	now.Store(t0.UnixNano())
	a := newAuth(t, Config{
		JWKSURL:     srv.URL,
		HTTPClient:  srv.Client(),
		JWKSRefresh: -1, // only the unknown-kid path reloads
		now:         func() time.Time { return time.Unix(0, now.Load()) },
	})
	auth := func(tok string) error {
		_, err := a.Authenticate(context.Background(), core.Credentials{Token: tok})
		return err
	}
	oldTok := mint(t, jwt.SigningMethodRS256, k.rsa1, "old", stdClaims(nil))
	newTok := mint(t, jwt.SigningMethodES256, k.ec1, "new", stdClaims(nil))
	if err := auth(oldTok); err != nil {
		t.Fatal(err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after start, want 1", n)
	}

	srv.set(jwksOf(jwkOf("new", &k.ec1.PublicKey)))
	if err := auth(newTok); err != nil {
		t.Fatalf("token with the rotated-in kid: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (one reload for the unknown kid)", n)
	}
	// The rotated-out key is gone: its kid is unknown now, and the reload
	// it would trigger is rate limited.
	checkRejected(t, oldTok, auth(oldTok), `unknown key id "old"`)
	unknown := mint(t, jwt.SigningMethodRS256, k.rsa2, "unknown", stdClaims(nil))
	for range 5 {
		checkRejected(t, unknown, auth(unknown), `unknown key id "unknown"`)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want still 2 within 30s of the last unknown-kid reload", n)
	}
	// 30s later an unknown kid may reload again.
	now.Add(int64(30 * time.Second))
	srv.set(jwksOf(jwkOf("new", &k.ec1.PublicKey), jwkOf("unknown", &k.rsa2.PublicKey)))
	if err := auth(unknown); err != nil {
		t.Fatalf("after the interval: %v", err)
	}
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3", n)
	}
	// A failed reload keeps the keys it had.
	now.Add(int64(time.Minute))
	srv.status.Store(http.StatusInternalServerError)
	other := mint(t, jwt.SigningMethodES256, k.ec2, "other", stdClaims(nil))
	checkRejected(t, other, auth(other), `unknown key id "other"`)
	if err := auth(newTok); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
}

// TestJWKSConcurrentUnknownKID: many requests with the same new kid share
// one reload and all succeed.
func TestJWKSConcurrentUnknownKID(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, jwksOf(jwkOf("a", &k.rsa1.PublicKey)))
	a := newAuth(t, Config{JWKSURL: srv.URL, HTTPClient: srv.Client(), JWKSRefresh: -1})
	srv.set(jwksOf(jwkOf("b", &k.ec1.PublicKey)))
	tok := mint(t, jwt.SigningMethodES256, k.ec1, "b", stdClaims(nil))
	errs := make(chan error, 20)
	var wg sync.WaitGroup
	for range cap(errs) {
		wg.Go(func() {
			_, err := a.Authenticate(context.Background(), core.Credentials{Token: tok})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (start and one shared reload)", n)
	}
}

// TestJWKSPeriodicRefresh: the background loop picks up a rotated set by
// itself, and a failing source leaves the keys in place.
func TestJWKSPeriodicRefresh(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, jwksOf(jwkOf("a", &k.rsa1.PublicKey)))
	refreshed := make(chan error, 1)
	a := newAuth(t, Config{
		JWKSURL:     srv.URL,
		HTTPClient:  srv.Client(),
		JWKSRefresh: time.Millisecond,
		kidRefetch:  time.Hour, // the unknown-kid path must not be what reloads
		afterRefresh: func(err error) {
			select {
			case refreshed <- err:
			default: // the test is not waiting
			}
		},
	})
	// Use up the unknown-kid reload now, so that only the loop can load "b".
	if _, err := a.Authenticate(context.Background(), core.Credentials{Token: mint(t, jwt.SigningMethodRS256, k.rsa2, "x", stdClaims(nil))}); err == nil {
		t.Fatal("unknown kid accepted")
	}
	srv.set(jwksOf(jwkOf("b", &k.ec1.PublicKey)))
	waitRefresh := func(ok func(error) bool) {
		t.Helper()
		deadline := time.After(waitFor)
		for {
			select {
			case err := <-refreshed:
				if ok(err) {
					return
				}
			case <-deadline:
				t.Fatal("no matching background refresh")
			}
		}
	}
	waitRefresh(func(err error) bool { _, ok := a.keys.Load().byKID["b"]; return err == nil && ok })
	tok := mint(t, jwt.SigningMethodES256, k.ec1, "b", stdClaims(nil))
	if _, err := a.Authenticate(context.Background(), core.Credentials{Token: tok}); err != nil {
		t.Fatal(err)
	}
	srv.status.Store(http.StatusServiceUnavailable)
	waitRefresh(func(err error) bool { return err != nil && strings.Contains(err.Error(), "503") })
	if _, err := a.Authenticate(context.Background(), core.Credentials{Token: tok}); err != nil {
		t.Fatalf("after a failed refresh: %v", err)
	}
}

// TestClose: Close ends the refresh goroutine before it returns, is
// idempotent, and the keys stay usable.
func TestClose(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, jwksOf(jwkOf("a", &k.rsa1.PublicKey)))
	a, err := New(context.Background(), Config{JWKSURL: srv.URL, HTTPClient: srv.Client(), JWKSRefresh: time.Millisecond,
		Logger: quiet, now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	if !refreshLoopRunning() {
		t.Fatal("no refresh goroutine after New")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if refreshLoopRunning() {
		t.Fatal("refresh goroutine still running after Close")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	tok := mint(t, jwt.SigningMethodRS256, k.rsa1, "a", stdClaims(nil))
	if _, err := a.Authenticate(context.Background(), core.Credentials{Token: tok}); err != nil {
		t.Fatalf("after Close: %v", err)
	}
	// Without a JWKS there is no goroutine; Close is still fine.
	b := newAuth(t, Config{Secret: testSecret})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// refreshLoopRunning reports whether a goroutine New started exists (a
// goroutine that has not run yet shows as New.gowrapN, not refreshLoop).
func refreshLoopRunning() bool {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Contains(string(buf[:n]), "created by github.com/switchboard-dev/switchboard/edge/auth.New ")
}
