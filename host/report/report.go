// Package report reads what plugins keep in Redis through the views they
// declare (sdk.View) and renders it: as text for `eventhost report`, as JSON
// for the dashboard. It knows no plugin: a histogram is a row of BITFIELD
// counters, a table a hash of totals, whoever wrote them.
package report

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/sdk"
)

// scanCount is the COUNT hint for SCAN, and batchSize the number of keys read
// per pipeline round trip.
const (
	scanCount = 1000
	batchSize = 1000
)

// Plugin is one plugin's views, as it declared them (after Configure).
type Plugin struct {
	Name  string
	Views []sdk.View
}

// Snapshot is what every view showed at one moment.
type Snapshot struct {
	Plugins []PluginData `json:"plugins"`
}

// PluginData is one plugin's views, read.
type PluginData struct {
	Name  string     `json:"name"`
	Views []ViewData `json:"views"`
}

// ViewData is one view, read. Exactly one of the kinds is set, or Error.
type ViewData struct {
	Title       string           `json:"title"`
	Histogram   *HistogramData   `json:"histogram,omitempty"`
	Table       *TableData       `json:"table,omitempty"`
	Leaderboard *LeaderboardData `json:"leaderboard,omitempty"`
	KeyCount    *KeyCountData    `json:"key_count,omitempty"`
	// Error says why the view could not be read (a key of the wrong type,
	// a field that is not a number); the other views are still read.
	Error string `json:"error,omitempty"`
}

// HistogramData is one histogram, or one per key matching a pattern.
type HistogramData struct {
	Buckets []string `json:"buckets"`
	// PerKey is true when the view's key is a pattern: then Series holds
	// one histogram per matching key, named by what '*' matched, sorted.
	PerKey bool     `json:"per_key"`
	Series []Series `json:"series"`
}

// Series is one histogram's counters.
type Series struct {
	Name   string  `json:"name"`
	Values []int64 `json:"values"`
	Total  int64   `json:"total"`
}

// TableData is a table of totals: rows sorted by the view's SortBy column,
// highest first, then by name.
type TableData struct {
	RowLabel string   `json:"row_label"`
	Columns  []string `json:"columns"`
	Rows     []Row    `json:"rows"`
	// Total sums each column, formatted.
	Total []string `json:"total"`
}

// Row is one row of a table. Texts are the values formatted with the
// column's decimals; Values the same as numbers.
type Row struct {
	Name   string    `json:"name"`
	Values []float64 `json:"values"`
	Texts  []string  `json:"texts"`
}

// LeaderboardData is the top of a sorted set, highest score first.
type LeaderboardData struct {
	MemberLabel string   `json:"member_label"`
	ScoreLabel  string   `json:"score_label"`
	Leaders     []Leader `json:"leaders"`
	// Members is the size of the whole set.
	Members int64 `json:"members"`
}

// Leader is one member of a leaderboard.
type Leader struct {
	Member string  `json:"member"`
	Score  float64 `json:"score"`
	Text   string  `json:"text"`
}

// KeyCountData says how many keys have each number of members.
type KeyCountData struct {
	SizeLabel string      `json:"size_label"`
	KeysLabel string      `json:"keys_label"`
	Sizes     []SizeCount `json:"sizes"`
	// Keys is the number of non-empty keys.
	Keys int64 `json:"keys"`
}

// SizeCount is Keys keys of Size members each.
type SizeCount struct {
	Size int64 `json:"size"`
	Keys int64 `json:"keys"`
}

// Read reads every view of plugins from rdb, in plugin and view order.
// Missing keys read as empty, so an empty database gives an empty report.
// Views are read in several round trips, so the snapshot is not atomic
// while plugins write. A view that cannot be read carries its Error, and
// err joins those errors; a failed round trip or ctx ending is err alone,
// with a nil snapshot.
func Read(ctx context.Context, rdb redis.UniversalClient, plugins []Plugin) (*Snapshot, error) {
	s := &Snapshot{Plugins: make([]PluginData, 0, len(plugins))}
	var errs []error
	for _, p := range plugins {
		pd := PluginData{Name: p.Name, Views: make([]ViewData, 0, len(p.Views))}
		for _, v := range p.Views {
			vd, err := readView(ctx, rdb, v)
			if err != nil {
				if ctx.Err() != nil || isConnError(err) {
					return nil, fmt.Errorf("read view %q of plugin %s: %w", v.Title, p.Name, err)
				}
				vd = ViewData{Title: v.Title, Error: err.Error()}
				errs = append(errs, fmt.Errorf("plugin %s, view %q: %w", p.Name, v.Title, err))
			}
			pd.Views = append(pd.Views, vd)
		}
		s.Plugins = append(s.Plugins, pd)
	}
	return s, errors.Join(errs...)
}

// isConnError tells a failed round trip from Redis refusing one command
// (a key of the wrong type) or a value that is not a number, which only
// spoil their view.
func isConnError(err error) bool {
	var re redis.Error
	var be *badValueError
	return !errors.As(err, &re) && !errors.As(err, &be)
}

// badValueError is a value a view cannot show.
type badValueError struct{ msg string }

func (e *badValueError) Error() string { return e.msg }

func readView(ctx context.Context, rdb redis.UniversalClient, v sdk.View) (ViewData, error) {
	vd := ViewData{Title: v.Title}
	var err error
	switch {
	case v.Histogram != nil:
		vd.Histogram, err = readHistogram(ctx, rdb, *v.Histogram)
	case v.Table != nil:
		vd.Table, err = readTable(ctx, rdb, *v.Table)
	case v.Leaderboard != nil:
		vd.Leaderboard, err = readLeaderboard(ctx, rdb, *v.Leaderboard)
	case v.KeyCount != nil:
		vd.KeyCount, err = readKeyCount(ctx, rdb, *v.KeyCount)
	default:
		err = &badValueError{"a view of no known kind"}
	}
	return vd, err
}

func readHistogram(ctx context.Context, rdb redis.UniversalClient, v sdk.HistogramView) (*HistogramData, error) {
	bits, signed, err := counterType(v.Counter)
	if err != nil {
		return nil, &badValueError{err.Error()}
	}
	keys := []string{v.Key}
	prefix, suffix, perKey := strings.Cut(v.Key, "*")
	if perKey {
		if keys, err = scanKeys(ctx, rdb, v.Key, "string"); err != nil {
			return nil, err
		}
	}
	h := &HistogramData{Buckets: v.Buckets, PerKey: perKey, Series: make([]Series, 0, len(keys))}
	for chunk := range slices.Chunk(keys, batchSize) {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(chunk))
		for i, k := range chunk {
			cmds[i] = pipe.Get(ctx, k)
		}
		// redis.Nil only means a key is missing or vanished after SCAN;
		// a refused GET is the key's own error, below.
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) && isConnError(err) {
			return nil, fmt.Errorf("get histograms: %w", err)
		}
		for i, c := range cmds {
			buf, err := c.Bytes()
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("get histogram %s: %w", chunk[i], err)
			}
			s := Series{Values: make([]int64, len(v.Buckets))}
			if perKey {
				s.Name = strings.TrimSuffix(strings.TrimPrefix(chunk[i], prefix), suffix)
			}
			for b := range s.Values {
				s.Values[b] = decode(buf, bits, signed, (v.FirstSlot+b)*bits)
				s.Total += s.Values[b]
			}
			h.Series = append(h.Series, s)
		}
	}
	return h, nil
}

func readTable(ctx context.Context, rdb redis.UniversalClient, v sdk.TableView) (*TableData, error) {
	fields, err := rdb.HGetAll(ctx, v.Key).Result()
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", v.Key, err)
	}
	// The longest suffix wins, should one column's suffix end another's.
	cols := make([]int, len(v.Columns))
	for i := range cols {
		cols[i] = i
	}
	slices.SortStableFunc(cols, func(a, b int) int { return len(v.Columns[b].Suffix) - len(v.Columns[a].Suffix) })
	byRow := map[string]*Row{}
	for f, val := range fields {
		for _, c := range cols {
			// Row names may contain anything, so only the suffix is reliable.
			name, ok := strings.CutSuffix(f, v.Columns[c].Suffix)
			if !ok {
				continue
			}
			x, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return nil, &badValueError{fmt.Sprintf("%s field %q = %q is not a number", v.Key, f, val)}
			}
			r := byRow[name]
			if r == nil {
				r = &Row{Name: name, Values: make([]float64, len(v.Columns))}
				byRow[name] = r
			}
			r.Values[c] = x
			break
		}
	}
	t := &TableData{RowLabel: v.RowLabel, Rows: make([]Row, 0, len(byRow))}
	sums := make([]float64, len(v.Columns))
	for _, c := range v.Columns {
		t.Columns = append(t.Columns, c.Label)
	}
	for _, r := range byRow {
		for i, x := range r.Values {
			r.Texts = append(r.Texts, number(x, v.Columns[i].Decimals))
			sums[i] += x
		}
		t.Rows = append(t.Rows, *r)
	}
	for i, x := range sums {
		t.Total = append(t.Total, number(x, v.Columns[i].Decimals))
	}
	slices.SortFunc(t.Rows, func(a, b Row) int {
		x, y := a.Values[v.SortBy], b.Values[v.SortBy]
		switch {
		case x > y:
			return -1
		case x < y:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return t, nil
}

func readLeaderboard(ctx context.Context, rdb redis.UniversalClient, v sdk.LeaderboardView) (*LeaderboardData, error) {
	pipe := rdb.Pipeline()
	top := pipe.ZRevRangeWithScores(ctx, v.Key, 0, int64(v.Leaders()-1))
	card := pipe.ZCard(ctx, v.Key)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read leaderboard %s: %w", v.Key, err)
	}
	l := &LeaderboardData{MemberLabel: v.MemberLabel, ScoreLabel: v.ScoreLabel, Members: card.Val(), Leaders: []Leader{}}
	for _, z := range top.Val() {
		m, _ := z.Member.(string)
		l.Leaders = append(l.Leaders, Leader{Member: m, Score: z.Score, Text: number(z.Score, v.Decimals)})
	}
	return l, nil
}

func readKeyCount(ctx context.Context, rdb redis.UniversalClient, v sdk.KeyCountView) (*KeyCountData, error) {
	keys, err := scanKeys(ctx, rdb, v.Pattern, "")
	if err != nil {
		return nil, err
	}
	counts := map[int64]int64{}
	for chunk := range slices.Chunk(keys, batchSize) {
		pipe := rdb.Pipeline()
		types := make([]*redis.StatusCmd, len(chunk))
		for i, k := range chunk {
			types[i] = pipe.Type(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("count members of %s: %w", v.Pattern, err)
		}
		pipe = rdb.Pipeline()
		cards := make([]*redis.IntCmd, 0, len(chunk))
		for i, k := range chunk {
			switch types[i].Val() {
			case "set":
				cards = append(cards, pipe.SCard(ctx, k))
			case "zset":
				cards = append(cards, pipe.ZCard(ctx, k))
			case "hash":
				cards = append(cards, pipe.HLen(ctx, k))
			case "list":
				cards = append(cards, pipe.LLen(ctx, k))
			}
			// Another type (or a key gone since SCAN) has no members:
			// it is not counted, and does not spoil the view.
		}
		if len(cards) == 0 {
			continue
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("count members of %s: %w", v.Pattern, err)
		}
		for _, c := range cards {
			// A key emptied between SCAN and the count no longer exists.
			if n := c.Val(); n > 0 {
				counts[n]++
			}
		}
	}
	k := &KeyCountData{SizeLabel: v.SizeLabel, KeysLabel: v.KeysLabel, Sizes: make([]SizeCount, 0, len(counts))}
	for size, n := range counts {
		k.Sizes = append(k.Sizes, SizeCount{Size: size, Keys: n})
		k.Keys += n
	}
	slices.SortFunc(k.Sizes, func(a, b SizeCount) int { return int(a.Size - b.Size) })
	return k, nil
}

func number(x float64, decimals int) string { return strconv.FormatFloat(x, 'f', decimals, 64) }

// scanKeys returns the keys matching match (of keyType, unless it is empty),
// sorted and without duplicates (SCAN may return a key twice). Filtering
// by type keeps a stray key that shares the prefix from spoiling a view.
// On a cluster every master is scanned, since SCAN covers one node only.
func scanKeys(ctx context.Context, rdb redis.UniversalClient, match, keyType string) ([]string, error) {
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.ScanType(ctx, cursor, match, scanCount, keyType).Result()
			if err != nil {
				return fmt.Errorf("scan %s: %w", match, err)
			}
			mu.Lock()
			for _, k := range keys {
				seen[k] = true
			}
			mu.Unlock()
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, rdb)
	}
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}
