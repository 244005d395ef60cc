// Package auth owns turning a bearer token into a Switchboard identity:
// JWT verification (HS256 with a shared secret; RS256 and ES256 with
// public keys from a PEM file or a JSON Web Key Set, selected by "kid"),
// the registered-claim checks (exp, nbf, iat with leeway; aud and iss when
// configured), and the mapping of "sub" to core.Identity.User and of the
// "rooms" claim to core.Permissions. Only the algorithms the configured
// keys verify are accepted. Every refusal wraps core.ErrUnauthorized with
// a reason safe to show the client; no error or log line contains a token.
//
// Concurrency: an Authenticator is safe for concurrent use. New loads the
// keys; with a JWKS it starts one goroutine that reloads them, which Close
// stops and waits for. Key sets are swapped atomically, so Authenticate
// never blocks on a periodic reload; it waits only for the reload a token
// with an unknown kid triggers (at most one per 30s, shared by concurrent
// callers).
package auth
