// Package auth turns bearer tokens into Switchboard identities. JWT
// verification uses github.com/golang-jwt/jwt/v5; the user id is the
// token's "sub". Authenticators are safe for concurrent use.
package auth
