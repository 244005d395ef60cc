package core

import (
	"fmt"
	"strings"
)

// Permissions limit which rooms a connection may subscribe to (join,
// ?rooms=) and publish to. Patterns are globs over room names: '*'
// matches any run of characters (including none, and including '/' and
// ':'), '?' exactly one; every other character matches itself. A nil
// *Permissions allows everything; an empty list allows nothing.
//
// Identity.Permissions carries them from an Authenticator (a JWT's
// "rooms" claim) to the session. Direct messages are not restricted.
type Permissions struct {
	Subscribe []string
	Publish   []string
}

// CanSubscribe reports whether room may be joined.
func (p *Permissions) CanSubscribe(room string) bool {
	return p == nil || matchAny(p.Subscribe, room)
}

// CanPublish reports whether room may be published to.
func (p *Permissions) CanPublish(room string) bool {
	return p == nil || matchAny(p.Publish, room)
}

func matchAny(patterns []string, room string) bool {
	for _, pat := range patterns {
		if MatchGlob(pat, room) {
			return true
		}
	}
	return false
}

// MatchGlob reports whether s matches pattern, where '*' matches any run
// of bytes and '?' one byte. It runs in O(len(pattern)·len(s)) at worst
// (no exponential backtracking on hostile patterns such as "*a*a*a*b").
func MatchGlob(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			// Let the last '*' swallow one more byte and retry.
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// ValidatePattern checks a room pattern: 1 to MaxRoomLen bytes of the
// room name characters plus '*' and '?'.
func ValidatePattern(pattern string) error {
	if pattern == "" || len(pattern) > MaxRoomLen {
		return fmt.Errorf("room pattern %q: must be 1-%d bytes", pattern, MaxRoomLen)
	}
	if err := ValidateRoom(strings.NewReplacer("*", "a", "?", "a").Replace(pattern)); err != nil {
		return fmt.Errorf("room pattern %q: only room name characters, '*' and '?' are allowed", pattern)
	}
	return nil
}
