package sdk

import "strings"

// MatchKey reports whether key matches pattern, where '*' matches any run of
// characters (including none) and every other character matches itself.
// Unlike path.Match, '/' and ':' are ordinary characters, as they are in
// Redis keys.
func MatchKey(pattern, key string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == key
	}
	if !strings.HasPrefix(key, parts[0]) {
		return false
	}
	key = key[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(key, p)
		if i < 0 {
			return false
		}
		key = key[i+len(p):]
	}
	return strings.HasSuffix(key, last)
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
