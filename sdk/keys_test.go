package sdk_test

import (
	"testing"

	"github.com/eventhost/eventhost/sdk"
)

func TestMatchKey(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		key     string
		want    bool
	}{
		{name: "exact match", pattern: "sales_summary", key: "sales_summary", want: true},
		{name: "exact mismatch", pattern: "sales_summary", key: "sales_summary2", want: false},
		{name: "exact is not a prefix match", pattern: "sales", key: "sales:x", want: false},
		{name: "prefix star matches", pattern: "sales:*", key: "sales:concert", want: true},
		{name: "prefix star matches empty rest", pattern: "sales:*", key: "sales:", want: true},
		{name: "prefix star needs the prefix", pattern: "sales:*", key: "sales", want: false},
		{name: "prefix star wrong prefix", pattern: "sales:*", key: "invoices:bob", want: false},
		{name: "star suffix matches", pattern: "*:total", key: "a:b:total", want: true},
		{name: "star suffix mismatch", pattern: "*:total", key: "a:b:totals", want: false},
		{name: "a*b*c matches", pattern: "a*b*c", key: "aXXbYYc", want: true},
		{name: "a*b*c matches with empty runs", pattern: "a*b*c", key: "abc", want: true},
		{name: "a*b*c needs b between", pattern: "a*b*c", key: "aXXc", want: false},
		{name: "a*b*c b only after c", pattern: "a*b*c", key: "acb", want: false},
		{name: "empty pattern matches empty key", pattern: "", key: "", want: true},
		{name: "empty pattern refuses a key", pattern: "", key: "x", want: false},
		{name: "star alone matches anything", pattern: "*", key: "purchase_order_details:1", want: true},
		{name: "star alone matches empty key", pattern: "*", key: "", want: true},
		{name: "a*a does not match a single a", pattern: "a*a", key: "a", want: false},
		{name: "a*a matches aa", pattern: "a*a", key: "aa", want: true},
		{name: "a*a matches aba", pattern: "a*a", key: "aba", want: true},
		{name: "prefix and suffix must not overlap", pattern: "ab*bc", key: "abc", want: false},
		{name: "middle and suffix must not overlap", pattern: "*a*a", key: "xa", want: false},
		{name: "colon is ordinary", pattern: "sales_histogram:time_of_day:*", key: "sales_histogram:time_of_day:rock:live", want: true},
		{name: "slash is ordinary under star", pattern: "files:*", key: "files:a/b/c", want: true},
		{name: "slash matched literally", pattern: "a/*/c", key: "a/b/x/c", want: true},
		{name: "slash literal mismatch", pattern: "a/*/c", key: "a:b:c", want: false},
		{name: "case sensitive", pattern: "Sales:*", key: "sales:x", want: false},
		{name: "double star", pattern: "a**b", key: "ab", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sdk.MatchKey(tt.pattern, tt.key); got != tt.want {
				t.Errorf("MatchKey(%q, %q) = %v, want %v", tt.pattern, tt.key, got, tt.want)
			}
		})
	}
}

func TestMatchesAny(t *testing.T) {
	patterns := []string{"sales_summary", "sales:*"}
	tests := []struct {
		name     string
		patterns []string
		key      string
		want     bool
	}{
		{name: "first pattern", patterns: patterns, key: "sales_summary", want: true},
		{name: "second pattern", patterns: patterns, key: "sales:x", want: true},
		{name: "none", patterns: patterns, key: "invoices:x", want: false},
		{name: "no patterns", patterns: nil, key: "sales:x", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sdk.MatchesAny(tt.patterns, tt.key); got != tt.want {
				t.Errorf("MatchesAny(%q, %q) = %v, want %v", tt.patterns, tt.key, got, tt.want)
			}
		})
	}
}

// The host matches every effect's key against the plugin's patterns: that
// must not allocate.
func TestMatchKeyAllocatesNothing(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		sdk.MatchKey("sales_histogram:time_of_day:*", "sales_histogram:time_of_day:Judo")
		sdk.MatchKey("a*b*c", "aXXbYYc")
	})
	if allocs != 0 {
		t.Errorf("MatchKey allocates %.0f times a call", allocs)
	}
}
