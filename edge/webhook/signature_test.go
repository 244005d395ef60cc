package webhook

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	secret := []byte("0123456789abcdef")
	body := []byte(`{"route":"connect"}`)
	now := time.Unix(1_800_000_000, 0)
	good := Sign(secret, now, body)
	old := Sign([]byte("old-secret-0123456"), now, body)
	v1 := good[strings.Index(good, "v1="):]
	for _, tc := range []struct {
		name      string
		header    string
		body      []byte
		at        time.Time
		tolerance time.Duration
		want      error
	}{
		{"valid", good, body, now, 0, nil},
		{"valid at the edge of the default tolerance", good, body, now.Add(DefaultTolerance), 0, nil},
		{"stale past the default tolerance", good, body, now.Add(DefaultTolerance + time.Second), 0, ErrStale},
		{"from the future", good, body, now.Add(-DefaultTolerance - time.Second), 0, ErrStale},
		{"custom tolerance", good, body, now.Add(10 * time.Second), 5 * time.Second, ErrStale},
		{"negative tolerance skips the clock", good, body, now.Add(24 * time.Hour), -1, nil},
		{"tampered body", good, []byte(`{"route":"connecT"}`), now, 0, ErrBadSignature},
		{"other secret", old, body, now, 0, ErrBadSignature},
		{"rotation: any v1 matches", old + "," + v1, body, now, 0, nil},
		{"spaces are tolerated", strings.ReplaceAll(good, ",", ", "), body, now, 0, nil},
		{"timestamp changed", strings.Replace(good, "t=1800000000", "t=1800000001", 1), body, now, 0, ErrBadSignature},
		{"empty header", "", body, now, 0, ErrNoSignature},
		{"no timestamp", v1, body, now, 0, ErrNoSignature},
		{"no v1", "t=1800000000", body, now, 0, ErrNoSignature},
		{"v1 not hex", "t=1800000000,v1=zz", body, now, 0, ErrNoSignature},
		{"v1 too short", "t=1800000000,v1=abcd", body, now, 0, ErrNoSignature},
		{"timestamp not a number", "t=soon," + v1, body, now, 0, ErrNoSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyAt(tc.at, secret, tc.header, tc.body, tc.tolerance)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("verify(%q) = %v, want %v", tc.header, err, tc.want)
			}
		})
	}
}

func TestSignFormat(t *testing.T) {
	h := Sign([]byte("0123456789abcdef"), time.Unix(42, 0), []byte("x"))
	if !strings.HasPrefix(h, "t=42,v1=") || len(h) != len("t=42,v1=")+64 {
		t.Fatalf("Sign = %q", h)
	}
	if err := Verify([]byte("0123456789abcdef"), Sign([]byte("0123456789abcdef"), time.Now(), []byte("x")), []byte("x"), 0); err != nil {
		t.Fatalf("Verify(Sign(now)) = %v", err)
	}
}
