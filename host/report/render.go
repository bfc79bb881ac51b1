package report

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// BarWidth is the length of the longest bar of a histogram's chart.
const BarWidth = 50

const (
	barChar = '█'
	// sparks[i] stands for a value in the (i/8, (i+1)/8] share of the
	// largest; zero and negative values are drawn as a space.
	sparks = "▁▂▃▄▅▆▇█"
)

// Render writes s as text to w: each plugin's views in order, under their
// titles. A histogram of one key is a bar chart, one per key a sparkline
// each; tables and leaderboards are tables. The whole report is built first
// and written in one call, so an error from w means nothing or part of the
// report was written.
func (s *Snapshot) Render(w io.Writer) error {
	var b bytes.Buffer
	var silent []string
	for _, p := range s.Plugins {
		if len(p.Views) == 0 {
			silent = append(silent, p.Name)
		}
		for _, v := range p.Views {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			renderView(&b, v)
		}
	}
	if len(silent) > 0 {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "(plugins that declare no views: %s)\n", strings.Join(silent, ", "))
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	return nil
}

func renderView(b *bytes.Buffer, v ViewData) {
	switch {
	case v.Error != "":
		fmt.Fprintf(b, "%s\n(cannot be read: %s)\n", v.Title, v.Error)
	case v.Histogram != nil && v.Histogram.PerKey:
		renderSparklines(b, v.Title, v.Histogram)
	case v.Histogram != nil:
		renderBars(b, v.Title, v.Histogram)
	case v.Table != nil:
		renderTable(b, v.Title, v.Table)
	case v.Leaderboard != nil:
		renderLeaderboard(b, v.Title, v.Leaderboard)
	case v.KeyCount != nil:
		renderKeyCount(b, v.Title, v.KeyCount)
	}
}

func renderBars(b *bytes.Buffer, title string, h *HistogramData) {
	b.WriteString(title + "\n")
	values := make([]int64, len(h.Buckets))
	if len(h.Series) > 0 {
		values = h.Series[0].Values
	}
	top := slices.Max(append([]int64{0}, values...))
	width := nameWidth(h.Buckets)
	for i, v := range values {
		fmt.Fprintf(b, "%-*s  %-*s %d\n", width, h.Buckets[i], BarWidth, bar(v, top), v)
	}
}

// bar is v's bar when top is the largest value. Any positive value gets at
// least one block so that a quiet bucket is not mistaken for an empty one.
func bar(v, top int64) string {
	if v <= 0 || top <= 0 {
		return ""
	}
	n := max(1, int(math.Round(float64(v)/float64(top)*BarWidth)))
	return strings.Repeat(string(barChar), n)
}

func renderSparklines(b *bytes.Buffer, title string, h *HistogramData) {
	span := ""
	if n := len(h.Buckets); n > 0 {
		span = h.Buckets[0] + ".." + h.Buckets[n-1]
	}
	fmt.Fprintf(b, "%s: |%s| total\n", title, span)
	if len(h.Series) == 0 {
		b.WriteString("(none yet)\n")
		return
	}
	names := make([]string, len(h.Series))
	for i, s := range h.Series {
		names[i] = s.Name
	}
	width := nameWidth(names)
	for _, s := range h.Series {
		fmt.Fprintf(b, "%-*s  |%s|  %d\n", width, s.Name, Sparkline(s.Values), s.Total)
	}
}

// Sparkline draws vs as one character each, scaled to the largest value.
func Sparkline(vs []int64) string {
	levels := []rune(sparks)
	top := slices.Max(append([]int64{0}, vs...))
	var s strings.Builder
	for _, v := range vs {
		if v <= 0 {
			s.WriteByte(' ')
			continue
		}
		i := int(math.Ceil(float64(v)/float64(top)*float64(len(levels)))) - 1
		s.WriteRune(levels[min(max(i, 0), len(levels)-1)])
	}
	return s.String()
}

// columnWidth is the width of a number column: at least 10, as wide as its
// label and every value.
func columnWidth(label string, texts ...string) int {
	return max(10, nameWidth(append(texts, label)))
}

func renderTable(b *bytes.Buffer, title string, t *TableData) {
	b.WriteString(title + "\n")
	if len(t.Rows) == 0 {
		b.WriteString("(none yet)\n")
		return
	}
	names := []string{t.RowLabel, "TOTAL"}
	for _, r := range t.Rows {
		names = append(names, r.Name)
	}
	width := nameWidth(names)
	widths := make([]int, len(t.Columns))
	for c, label := range t.Columns {
		texts := []string{t.Total[c]}
		for _, r := range t.Rows {
			texts = append(texts, r.Texts[c])
		}
		widths[c] = columnWidth(label, texts...)
	}
	line := func(name string, cells []string) {
		fmt.Fprintf(b, "%-*s", width, name)
		for c, cell := range cells {
			fmt.Fprintf(b, "  %*s", widths[c], cell)
		}
		b.WriteByte('\n')
	}
	line(t.RowLabel, t.Columns)
	for _, r := range t.Rows {
		line(r.Name, r.Texts)
	}
	line("TOTAL", t.Total)
}

func renderLeaderboard(b *bytes.Buffer, title string, l *LeaderboardData) {
	b.WriteString(title + "\n")
	if len(l.Leaders) == 0 {
		b.WriteString("(none yet)\n")
		return
	}
	names := []string{l.MemberLabel}
	texts := []string{}
	for _, e := range l.Leaders {
		names = append(names, e.Member)
		texts = append(texts, e.Text)
	}
	width, sw := nameWidth(names), columnWidth(l.ScoreLabel, texts...)
	fmt.Fprintf(b, "%4s  %-*s  %*s\n", "#", width, l.MemberLabel, sw, l.ScoreLabel)
	for i, e := range l.Leaders {
		fmt.Fprintf(b, "%4d  %-*s  %*s\n", i+1, width, e.Member, sw, e.Text)
	}
	fmt.Fprintf(b, "(top %d of %d)\n", len(l.Leaders), l.Members)
}

func renderKeyCount(b *bytes.Buffer, title string, k *KeyCountData) {
	b.WriteString(title + "\n")
	if len(k.Sizes) == 0 {
		b.WriteString("(none yet)\n")
		return
	}
	sw, kw := max(8, utf8.RuneCountInString(k.SizeLabel)), max(9, utf8.RuneCountInString(k.KeysLabel))
	fmt.Fprintf(b, "%*s  %*s\n", sw, k.SizeLabel, kw, k.KeysLabel)
	for _, s := range k.Sizes {
		fmt.Fprintf(b, "%*d  %*d\n", sw, s.Size, kw, s.Keys)
	}
	fmt.Fprintf(b, "total %s: %d\n", strings.ToLower(k.KeysLabel), k.Keys)
}

// nameWidth counts runes, as fmt widths do.
func nameWidth(names []string) int {
	w := 0
	for _, n := range names {
		w = max(w, utf8.RuneCountInString(n))
	}
	return w
}
