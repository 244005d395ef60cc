package auth

import (
	"context"
	"time"

	"github.com/switchboard-dev/switchboard/core"
)

// HS256 returns an Authenticator that accepts only HS256 JWTs signed with
// secret: New with Secret and Leeway set, so the rooms claim, iat and
// Identity.Expires are honoured as documented there. A leeway of zero or
// less means none. A secret New refuses (shorter than MinSecretLen)
// yields an Authenticator that rejects every token, as the edge's config
// validation refuses such secrets before this is reached. It starts no
// goroutine, so it needs no Close.
func HS256(secret []byte, leeway time.Duration) core.Authenticator {
	if leeway <= 0 {
		leeway = -1
	}
	a, err := New(context.Background(), Config{Secret: secret, Leeway: leeway})
	if err != nil {
		return core.AuthenticatorFunc(func(context.Context, core.Credentials) (core.Identity, error) {
			return core.Identity{}, unauthorized("the server's token secret is misconfigured")
		})
	}
	return a
}
