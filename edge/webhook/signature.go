package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries a call's signature:
//
//	X-Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>
const SignatureHeader = "X-Switchboard-Signature"

// DefaultTolerance is how far a signature's timestamp may be from the
// verifier's clock when Verify is given a tolerance of zero.
const DefaultTolerance = 5 * time.Minute

// Verification failures, matched with errors.Is.
var (
	// ErrNoSignature: the header is missing or has no t= and v1= parts.
	ErrNoSignature = errors.New("switchboard/webhook: missing or malformed signature header")
	// ErrBadSignature: no v1= value matches the body and secret.
	ErrBadSignature = errors.New("switchboard/webhook: signature does not match")
	// ErrStale: the timestamp is outside the tolerance (a replay, or a
	// clock far off).
	ErrStale = errors.New("switchboard/webhook: signature timestamp outside tolerance")
)

// Sign returns the SignatureHeader value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks that header (the SignatureHeader value) signs body with
// secret and that its timestamp is within tolerance of now: zero means
// DefaultTolerance, negative skips the timestamp check (never do that on
// a public endpoint: it allows replays). Several v1= values are allowed
// (any one matching suffices), so a sender can sign with an old and a new
// secret while they rotate. Backends must verify the raw body, before
// decoding it.
func Verify(secret []byte, header string, body []byte, tolerance time.Duration) error {
	return verifyAt(time.Now(), secret, header, body, tolerance)
}

func verifyAt(now time.Time, secret []byte, header string, body []byte, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		ok = hmac.Equal(s, want) || ok // constant time: compare every value
	}
	if !ok {
		return ErrBadSignature
	}
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}
	if tolerance > 0 {
		if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
			return ErrStale
		}
	}
	return nil
}
