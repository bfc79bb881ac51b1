// Package saleshistogram counts tickets sold per hour of the day, overall and
// per event, in BITFIELD counters laid out as the tutorial's
// listener_sales_analytics lays them out.
package saleshistogram

import (
	"errors"
	"fmt"
	"time"

	"github.com/eventhost/eventhost/sdk"
)

// Keys written; the per-event key appends ":<event>".
const (
	KeyOverall     = "sales_histogram:time_of_day"
	keyEventPrefix = KeyOverall + ":"
)

// Config field names.
const (
	FieldCounter  = "counter"
	FieldOverflow = "overflow"
	FieldTimezone = "timezone"
)

// Histogram is the sales-histogram plugin.
type Histogram struct {
	counter  string
	bits     int64
	overflow sdk.Overflow
	loc      *time.Location
}

var _ sdk.Plugin = (*Histogram)(nil)

// New returns the plugin with the tutorial's layout (u8, wrap, UTC); Configure
// may change it.
func New() *Histogram {
	return &Histogram{counter: "u8", bits: 8, overflow: sdk.OverflowWrap, loc: time.UTC}
}

// Describe implements sdk.Plugin.
func (h *Histogram) Describe() sdk.Description {
	return sdk.Description{
		Name:    "sales-histogram",
		Version: "1.0.0",
		Keys:    []string{KeyOverall, keyEventPrefix + "*"},
		Config: []sdk.Field{
			{Name: FieldCounter, Type: sdk.TypeString, Default: "u8",
				Doc: "BITFIELD counter type per hour: u1..u63 or i1..i64. u8 is the tutorial's and wraps at 256."},
			{Name: FieldOverflow, Type: sdk.TypeString, Default: "wrap",
				Doc: "what a full counter does: wrap (the tutorial's), sat (stick at the maximum) or fail (drop the increment)."},
			{Name: FieldTimezone, Type: sdk.TypeString, Default: "UTC",
				Doc: "IANA time zone whose hour of day an order is counted in."},
		},
		Views: h.views(),
	}
}

// views shows the overall histogram and one per event, in the counter type
// and time zone configured.
func (h *Histogram) views() []sdk.View {
	hist := func(key string) *sdk.HistogramView {
		return &sdk.HistogramView{Key: key, Counter: h.counter, FirstSlot: int(SlotOffset(0, 1)), Buckets: sdk.HourBuckets()}
	}
	zone := h.loc.String()
	return []sdk.View{
		{Title: "Sales by hour of day (" + zone + "), all events", Histogram: hist(KeyOverall)},
		{Title: "Sales by hour of day (" + zone + "), per event", Histogram: hist(keyEventPrefix + "*")},
	}
}

// Configure implements sdk.Plugin.
func (h *Histogram) Configure(cfg sdk.Config) error {
	var errs []error
	bits, err := sdk.ParseCounter(cfg.String(FieldCounter))
	if err != nil {
		errs = append(errs, sdk.FieldErrorf(FieldCounter, "%v", err))
	}
	overflow, err := ParseOverflow(cfg.String(FieldOverflow))
	if err != nil {
		errs = append(errs, sdk.FieldErrorf(FieldOverflow, "%v", err))
	}
	loc, err := time.LoadLocation(cfg.String(FieldTimezone))
	if err != nil {
		errs = append(errs, sdk.FieldErrorf(FieldTimezone, "unknown time zone %q", cfg.String(FieldTimezone)))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	h.counter, h.bits, h.overflow, h.loc = cfg.String(FieldCounter), bits, overflow, loc
	return nil
}

// Handle implements sdk.Plugin: one counter increment per key, in the slot of
// the order's hour. Slot 0 stays unused, as in the tutorial, whose offset is
// (hour+1)*8.
func (h *Histogram) Handle(o sdk.Order, out *sdk.Effects) error {
	offset := SlotOffset(o.Time().In(h.loc).Hour(), h.bits)
	out.BitfieldIncrBy(KeyOverall, h.counter, offset, o.Qty, h.overflow)
	out.BitfieldIncrBy(out.Concat(keyEventPrefix, o.Event), h.counter, offset, o.Qty, h.overflow)
	return nil
}

// SlotOffset is the bit offset of hour's counter for counters of bits bits.
func SlotOffset(hour int, bits int64) int64 { return int64(hour+1) * bits }

// ParseOverflow maps the config's overflow names to BITFIELD modes.
func ParseOverflow(s string) (sdk.Overflow, error) {
	switch s {
	case "wrap":
		return sdk.OverflowWrap, nil
	case "sat":
		return sdk.OverflowSat, nil
	case "fail":
		return sdk.OverflowFail, nil
	}
	return "", fmt.Errorf("overflow %q is not one of wrap, sat, fail", s)
}
