package sdk

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// View says how to show some of the keys a plugin writes. `eventhost report`
// and the dashboard render any plugin's views without knowing the plugin,
// so a new metric shows up with its plugin, and the host never names one.
//
// Exactly one of Histogram, Table, Leaderboard and KeyCount is set. Views may
// depend on the plugin's settings (a counter type, a key): the host reads
// them from a Describe made after Configure, so Describe returns the views
// of the configuration in force.
type View struct {
	// Title heads the view, e.g. "Sales by hour of day (UTC)".
	Title string

	Histogram   *HistogramView
	Table       *TableView
	Leaderboard *LeaderboardView
	KeyCount    *KeyCountView
}

// HistogramView is a row of BITFIELD counters in one string key: bucket i
// is the Counter-typed integer at bit offset (FirstSlot+i)*bits.
type HistogramView struct {
	// Key is the string key, or a pattern with one '*': then each matching
	// key is one histogram, named by the part '*' matched (an event).
	Key string
	// Counter is the BITFIELD type, "u8" … "u63" or "i1" … "i64".
	Counter string
	// FirstSlot is the slot of the first bucket: 1 when slot 0 is unused,
	// as in the tutorial's layout.
	FirstSlot int
	// Buckets labels the counters, one each ("00h" … "23h").
	Buckets []string
}

// TableView is a hash of totals: field "<row><suffix>" holds column
// <suffix>'s number for row <row> (an event's ":total_sales"), so rows are
// found from the fields and may hold any character.
type TableView struct {
	Key string
	// RowLabel heads the row names' column ("EVENT").
	RowLabel string
	Columns  []TableColumn
	// SortBy is the index in Columns of the column whose values order the
	// rows, highest first.
	SortBy int
}

// TableColumn is one numeric column of a TableView.
type TableColumn struct {
	Label string
	// Suffix ends the field names of this column.
	Suffix string
	// Decimals is how many digits after the point are shown.
	Decimals int
}

// LeaderboardView is a sorted set shown highest score first.
type LeaderboardView struct {
	Key string
	// Limit is how many members are shown; 0 means DefaultLeaders.
	Limit int
	// MemberLabel and ScoreLabel head the two columns.
	MemberLabel string
	ScoreLabel  string
	Decimals    int
}

// KeyCountView counts the members of every key matching Pattern (a set,
// sorted set, hash or list) and shows how many keys have each count: how
// many customers have 1, 2, 3 … invoices.
type KeyCountView struct {
	Pattern string
	// SizeLabel names a key's count ("INVOICES"), KeysLabel the keys
	// ("CUSTOMERS").
	SizeLabel string
	KeysLabel string
}

// Bounds on what a plugin may declare: the host reads every view on every
// refresh, so a plugin cannot make it read without end.
const (
	MaxViews       = 16
	MaxBuckets     = 256
	MaxColumns     = 8
	MaxLeaders     = 100
	DefaultLeaders = 10
	MaxLabelBytes  = 200
)

// ValidateViews returns why d's views cannot be shown, or nil: each view
// of one kind, within the bounds above, its labels short and UTF-8, and its
// keys inside the patterns d declares (a view reads only what its plugin
// writes, never an order or another plugin's data).
func ValidateViews(d Description) error {
	if len(d.Views) > MaxViews {
		return fmt.Errorf("%d views, more than %d", len(d.Views), MaxViews)
	}
	var errs []error
	for i, v := range d.Views {
		if err := validateView(v, d.Keys); err != nil {
			errs = append(errs, fmt.Errorf("view %d (%q): %w", i, v.Title, err))
		}
	}
	return errors.Join(errs...)
}

func validateView(v View, keys []string) error {
	var labels []string
	var key string
	kinds := 0
	if h := v.Histogram; h != nil {
		kinds++
		key, labels = h.Key, h.Buckets
		if _, err := ParseCounter(h.Counter); err != nil {
			return err
		}
		if len(h.Buckets) == 0 || len(h.Buckets) > MaxBuckets {
			return fmt.Errorf("%d buckets: a histogram has 1 to %d", len(h.Buckets), MaxBuckets)
		}
		if h.FirstSlot < 0 || h.FirstSlot > MaxBuckets {
			return fmt.Errorf("first slot %d is not within 0 to %d", h.FirstSlot, MaxBuckets)
		}
		if strings.Count(h.Key, "*") > 1 {
			return fmt.Errorf("key %q has more than one '*'", h.Key)
		}
	}
	if t := v.Table; t != nil {
		kinds++
		key, labels = t.Key, []string{t.RowLabel}
		if strings.Contains(t.Key, "*") {
			return fmt.Errorf("table key %q is a pattern: a table is one hash", t.Key)
		}
		if len(t.Columns) == 0 || len(t.Columns) > MaxColumns {
			return fmt.Errorf("%d columns: a table has 1 to %d", len(t.Columns), MaxColumns)
		}
		if t.SortBy < 0 || t.SortBy >= len(t.Columns) {
			return fmt.Errorf("sort by column %d of %d", t.SortBy, len(t.Columns))
		}
		for _, c := range t.Columns {
			if c.Suffix == "" {
				return fmt.Errorf("column %q has no field suffix", c.Label)
			}
			if c.Decimals < 0 || c.Decimals > 10 {
				return fmt.Errorf("column %q: %d decimals is not within 0 to 10", c.Label, c.Decimals)
			}
			labels = append(labels, c.Label, c.Suffix)
		}
	}
	if l := v.Leaderboard; l != nil {
		kinds++
		key, labels = l.Key, []string{l.MemberLabel, l.ScoreLabel}
		if strings.Contains(l.Key, "*") {
			return fmt.Errorf("leaderboard key %q is a pattern: a leaderboard is one sorted set", l.Key)
		}
		if l.Limit < 0 || l.Limit > MaxLeaders {
			return fmt.Errorf("limit %d is not within 0 to %d", l.Limit, MaxLeaders)
		}
		if l.Decimals < 0 || l.Decimals > 10 {
			return fmt.Errorf("%d decimals is not within 0 to 10", l.Decimals)
		}
	}
	if k := v.KeyCount; k != nil {
		kinds++
		key, labels = k.Pattern, []string{k.SizeLabel, k.KeysLabel}
	}
	if kinds != 1 {
		return fmt.Errorf("a view is one of histogram, table, leaderboard or key count; this one is %d", kinds)
	}
	for _, s := range append(labels, v.Title, key) {
		if len(s) > MaxLabelBytes || !utf8.ValidString(s) {
			return fmt.Errorf("label or key %.40q is not UTF-8 of at most %d bytes", s, MaxLabelBytes)
		}
	}
	// Read as a string, a view's pattern matches a declared pattern only
	// if every key it matches does: a '*' of the view can only be matched
	// by a '*' of the declared pattern.
	if !MatchesAny(keys, key) {
		return fmt.Errorf("key %q is not inside the key patterns the plugin declares %q", key, keys)
	}
	return nil
}

// Leaders is how many members v shows.
func (v LeaderboardView) Leaders() int {
	if v.Limit == 0 {
		return DefaultLeaders
	}
	return v.Limit
}

// HourBuckets labels the 24 buckets of an hour-of-day histogram, "00h" …
// "23h".
func HourBuckets() []string {
	out := make([]string, 24)
	for h := range out {
		out[h] = fmt.Sprintf("%02dh", h)
	}
	return out
}
