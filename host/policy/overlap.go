package policy

// Overlaps reports whether some key matches both key patterns a and b, in the
// '*'-only glob syntax of sdk.MatchKey.
func Overlaps(a, b string) bool {
	// seen[i][j] marks the state "a[i:] and b[j:] must match the same rest
	// of a key" as explored. Both patterns are short, so the table is too.
	seen := make([][]bool, len(a)+1)
	for i := range seen {
		seen[i] = make([]bool, len(b)+1)
	}
	var walk func(i, j int) bool
	walk = func(i, j int) bool {
		if seen[i][j] {
			return false
		}
		seen[i][j] = true
		switch {
		case i == len(a) && j == len(b):
			return true
		case i < len(a) && a[i] == '*':
			// The star matches nothing more, or also the next
			// character b must produce (a star of b's included: both
			// stars eating the same character is never needed, since
			// dropping it leaves a shorter common key).
			return walk(i+1, j) || (j < len(b) && walk(i, j+1))
		case j < len(b) && b[j] == '*':
			return walk(i, j+1) || (i < len(a) && walk(i+1, j))
		case i < len(a) && j < len(b) && a[i] == b[j]:
			return walk(i+1, j+1)
		}
		return false
	}
	return walk(0, 0)
}

// UnreachableAllowKeys returns the patterns of allow that no key matching one
// of declared can match: allow_keys entries that can only be a mistake,
// because the plugin could never write such a key anyway.
func UnreachableAllowKeys(declared, allow []string) []string {
	var out []string
	for _, a := range allow {
		reachable := false
		for _, d := range declared {
			reachable = reachable || Overlaps(a, d)
		}
		if !reachable {
			out = append(out, a)
		}
	}
	return out
}
