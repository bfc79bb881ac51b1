package sdk

import "strings"

// MatchKey reports whether key matches pattern, where '*' matches any run of
// characters (including none) and every other character matches itself.
// Unlike path.Match, '/' and ':' are ordinary characters, as they are in
// Redis keys.
func MatchKey(pattern, key string) bool {
	// The host checks every effect's key: this allocates nothing.
	first, rest, found := strings.Cut(pattern, "*")
	if !found {
		return pattern == key
	}
	if !strings.HasPrefix(key, first) {
		return false
	}
	key = key[len(first):]
	for {
		part, more, found := strings.Cut(rest, "*")
		if !found {
			return strings.HasSuffix(key, part) // the last part
		}
		i := strings.Index(key, part)
		if i < 0 {
			return false
		}
		key, rest = key[i+len(part):], more
	}
}

// MatchesAny reports whether key matches one of patterns.
func MatchesAny(patterns []string, key string) bool {
	for _, p := range patterns {
		if MatchKey(p, key) {
			return true
		}
	}
	return false
}
