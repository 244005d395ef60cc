package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/core"
)

// HS256 returns an Authenticator that accepts only HS256 JWTs signed with
// secret, honouring exp and nbf with the given leeway. The user id is the
// "sub" claim, which must be a valid Switchboard user id. Errors wrap
// core.ErrUnauthorized and never contain the token.
func HS256(secret []byte, leeway time.Duration) core.Authenticator {
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithLeeway(leeway))
	key := func(*jwt.Token) (any, error) { return secret, nil }
	return core.AuthenticatorFunc(func(_ context.Context, c core.Credentials) (core.Identity, error) {
		if c.Token == "" {
			return core.Identity{}, fmt.Errorf("%w: token required", core.ErrUnauthorized)
		}
		var claims jwt.RegisteredClaims
		if _, err := parser.ParseWithClaims(c.Token, &claims, key); err != nil {
			return core.Identity{}, fmt.Errorf("%w: %s", core.ErrUnauthorized, reason(err))
		}
		if err := core.ValidateUser(claims.Subject); err != nil {
			return core.Identity{}, fmt.Errorf("%w: sub claim: %w", core.ErrUnauthorized, err)
		}
		return core.Identity{User: claims.Subject}, nil
	})
}

// reason names what was wrong with a token without echoing it.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && strings.Contains(err.Error(), "signing method"):
		return "algorithm not allowed (tokens must be HS256)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unverifiable token"
	default:
		return "invalid token"
	}
}
