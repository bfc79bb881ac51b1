package report

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// BarWidth is the length of the longest bar in the hourly chart.
const BarWidth = 50

const (
	barChar = '█'
	// sparks[i] stands for a value in the (i/8, (i+1)/8] share of the
	// largest; zero and negative values are drawn as a space.
	sparks = "▁▂▃▄▅▆▇█"
)

// Render writes r as text to w: the overall hourly bar chart, one sparkline
// per event, the totals table and the invoices table. The whole report is
// built first and written in one call, so an error from w means nothing or
// part of the report was written.
func (r *Report) Render(w io.Writer) error {
	var b bytes.Buffer
	r.renderOverall(&b)
	b.WriteByte('\n')
	r.renderPerEvent(&b)
	b.WriteByte('\n')
	r.renderTotals(&b)
	b.WriteByte('\n')
	r.renderInvoices(&b)
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	return nil
}

func (r *Report) renderOverall(b *bytes.Buffer) {
	b.WriteString("Sales by hour of day (UTC), all events\n")
	top := slices.Max(r.Overall[:])
	for h, v := range r.Overall {
		fmt.Fprintf(b, "%02dh  %-*s %d\n", h, BarWidth, bar(v, top), v)
	}
}

// bar is v's bar when top is the largest value. Any positive value gets at
// least one block so that a quiet hour is not mistaken for an empty one.
func bar(v, top int64) string {
	if v <= 0 || top <= 0 {
		return ""
	}
	n := max(1, int(math.Round(float64(v)/float64(top)*BarWidth)))
	return strings.Repeat(string(barChar), n)
}

func (r *Report) renderPerEvent(b *bytes.Buffer) {
	b.WriteString("Sales by hour of day (UTC), per event: |00h..23h| total\n")
	if len(r.PerEvent) == 0 {
		b.WriteString("(no per-event histograms)\n")
		return
	}
	events := slices.Sorted(maps.Keys(r.PerEvent))
	width := nameWidth(events)
	for _, e := range events {
		h := r.PerEvent[e]
		var sum int64
		for _, v := range h {
			sum += v
		}
		fmt.Fprintf(b, "%-*s  |%s|  %d\n", width, e, Sparkline(h[:]), sum)
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

func (r *Report) renderTotals(b *bytes.Buffer) {
	b.WriteString("Totals per event\n")
	if len(r.Totals) == 0 {
		b.WriteString("(no sales summary)\n")
		return
	}
	events := make([]string, 0, len(r.Totals)+1)
	for _, t := range r.Totals {
		events = append(events, t.Event)
	}
	width := nameWidth(append(events, "EVENT", "TOTAL"))
	fmt.Fprintf(b, "%-*s  %10s  %14s\n", width, "EVENT", "TICKETS", "SALES")
	var tickets int64
	var sales float64
	for _, t := range r.Totals {
		fmt.Fprintf(b, "%-*s  %10d  %14s\n", width, t.Event, t.Tickets, money(t.Sales))
		tickets += t.Tickets
		sales += t.Sales
	}
	fmt.Fprintf(b, "%-*s  %10d  %14s\n", width, "TOTAL", tickets, money(sales))
}

func money(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }

func (r *Report) renderInvoices(b *bytes.Buffer) {
	b.WriteString("Customers by number of invoices\n")
	if len(r.InvoiceCounts) == 0 {
		b.WriteString("(no invoices)\n")
		return
	}
	fmt.Fprintf(b, "%8s  %9s\n", "INVOICES", "CUSTOMERS")
	for _, n := range slices.Sorted(maps.Keys(r.InvoiceCounts)) {
		fmt.Fprintf(b, "%8d  %9d\n", n, r.InvoiceCounts[n])
	}
	fmt.Fprintf(b, "total customers: %d\n", r.Customers)
}

// nameWidth counts runes, as fmt widths do.
func nameWidth(names []string) int {
	w := 0
	for _, n := range names {
		w = max(w, utf8.RuneCountInString(n))
	}
	return w
}
