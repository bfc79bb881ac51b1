package saleshistogram_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	saleshistogram "github.com/eventhost/eventhost/plugins/sales-histogram"
	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/sdktest"
)

// ts returns the unix time of 2024-03-05 at hour:30 UTC.
func ts(hour int) int64 { return time.Date(2024, 3, 5, hour, 30, 0, 0, time.UTC).Unix() }

func bitfield(key string, args ...string) sdk.Effect {
	return sdk.Effect{Command: "BITFIELD", Key: key, Args: args}
}

func TestHistogram(t *testing.T) {
	const overall = "sales_histogram:time_of_day"
	tests := []struct {
		name  string
		conf  map[string]any
		order sdk.Order
		want  []sdk.Effect
	}{
		{
			name:  "defaults: u8, wrap, UTC hour 0 is slot 1",
			conf:  map[string]any{},
			order: sdk.Order{ID: "1", TS: ts(0), Qty: 2, Cost: 10, Event: "rock", Who: "ann"},
			want: []sdk.Effect{
				bitfield(overall, "INCRBY", "u8", "8", "2"),
				bitfield(overall+":rock", "INCRBY", "u8", "8", "2"),
			},
		},
		{
			name:  "defaults: hour 13 UTC is offset 112",
			conf:  nil,
			order: sdk.Order{ID: "2", TS: ts(13), Qty: 1, Cost: 10, Event: "jazz", Who: "bob"},
			want: []sdk.Effect{
				bitfield(overall, "INCRBY", "u8", "112", "1"),
				bitfield(overall+":jazz", "INCRBY", "u8", "112", "1"),
			},
		},
		{
			name:  "defaults: hour 23 is the last slot",
			conf:  map[string]any{},
			order: sdk.Order{ID: "3", TS: ts(23), Qty: 7, Cost: 10, Event: "e", Who: "w"},
			want: []sdk.Effect{
				bitfield(overall, "INCRBY", "u8", "192", "7"),
				bitfield(overall+":e", "INCRBY", "u8", "192", "7"),
			},
		},
		{
			name:  "explicit defaults are the same",
			conf:  map[string]any{"counter": "u8", "overflow": "wrap", "timezone": "UTC"},
			order: sdk.Order{ID: "4", TS: ts(5), Qty: 1, Cost: 1, Event: "e", Who: "w"},
			want: []sdk.Effect{
				bitfield(overall, "INCRBY", "u8", "48", "1"),
				bitfield(overall+":e", "INCRBY", "u8", "48", "1"),
			},
		},
		{
			name:  "u32 counter: offset (hour+1)*32",
			conf:  map[string]any{"counter": "u32"},
			order: sdk.Order{ID: "5", TS: ts(5), Qty: 3, Cost: 1, Event: "e", Who: "w"},
			want: []sdk.Effect{
				bitfield(overall, "INCRBY", "u32", "192", "3"),
				bitfield(overall+":e", "INCRBY", "u32", "192", "3"),
			},
		},
		{
			name:  "i64 counter",
			conf:  map[string]any{"counter": "i64"},
			order: sdk.Order{ID: "6", TS: ts(1), Qty: 1, Cost: 1, Event: "e", Who: "w"},
			want: []sdk.Effect{
				bitfield(overall, "INCRBY", "i64", "128", "1"),
				bitfield(overall+":e", "INCRBY", "i64", "128", "1"),
			},
		},
		{
			name:  "overflow sat",
			conf:  map[string]any{"overflow": "sat"},
			order: sdk.Order{ID: "7", TS: ts(2), Qty: 4, Cost: 1, Event: "e", Who: "w"},
			want: []sdk.Effect{
				bitfield(overall, "OVERFLOW", "SAT", "INCRBY", "u8", "24", "4"),
				bitfield(overall+":e", "OVERFLOW", "SAT", "INCRBY", "u8", "24", "4"),
			},
		},
		{
			name:  "overflow fail",
			conf:  map[string]any{"overflow": "fail", "counter": "u16"},
			order: sdk.Order{ID: "8", TS: ts(2), Qty: 4, Cost: 1, Event: "e", Who: "w"},
			want: []sdk.Effect{
				bitfield(overall, "OVERFLOW", "FAIL", "INCRBY", "u16", "48", "4"),
				bitfield(overall+":e", "OVERFLOW", "FAIL", "INCRBY", "u16", "48", "4"),
			},
		},
		{
			name:  "Asia/Tokyo shifts the hour by +9",
			conf:  map[string]any{"timezone": "Asia/Tokyo"},
			order: sdk.Order{ID: "9", TS: ts(3), Qty: 1, Cost: 1, Event: "e", Who: "w"},
			want: []sdk.Effect{ // 03:30 UTC is 12:30 in Tokyo: (12+1)*8
				bitfield(overall, "INCRBY", "u8", "104", "1"),
				bitfield(overall+":e", "INCRBY", "u8", "104", "1"),
			},
		},
		{
			name:  "Asia/Tokyo wraps past midnight",
			conf:  map[string]any{"timezone": "Asia/Tokyo"},
			order: sdk.Order{ID: "10", TS: ts(20), Qty: 1, Cost: 1, Event: "e", Who: "w"},
			want: []sdk.Effect{ // 20:30 UTC is 05:30 next day in Tokyo: (5+1)*8
				bitfield(overall, "INCRBY", "u8", "48", "1"),
				bitfield(overall+":e", "INCRBY", "u8", "48", "1"),
			},
		},
		{
			name:  "event with colons and slashes stays in the key",
			conf:  map[string]any{},
			order: sdk.Order{ID: "11", TS: ts(0), Qty: 1, Cost: 1, Event: "a:b/c", Who: "w"},
			want: []sdk.Effect{
				bitfield(overall, "INCRBY", "u8", "8", "1"),
				bitfield(overall+":a:b/c", "INCRBY", "u8", "8", "1"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := sdktest.Start(t, saleshistogram.New())
			h.MustConfigure(tt.conf)
			got := h.Effects(tt.order)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("effects = %#v\nwant      %#v", got, tt.want)
			}
			h.CheckKeys(got)
		})
	}
}

func TestHistogramConfigErrors(t *testing.T) {
	tests := []struct {
		name       string
		conf       map[string]any
		wantFields []string
	}{
		{name: "u99 is too wide", conf: map[string]any{"counter": "u99"}, wantFields: []string{"counter"}},
		{name: "u64 is too wide for unsigned", conf: map[string]any{"counter": "u64"}, wantFields: []string{"counter"}},
		{name: "u0", conf: map[string]any{"counter": "u0"}, wantFields: []string{"counter"}},
		{name: "x8 is no type", conf: map[string]any{"counter": "x8"}, wantFields: []string{"counter"}},
		{name: "overflow boom", conf: map[string]any{"overflow": "boom"}, wantFields: []string{"overflow"}},
		{name: "overflow is lowercase only", conf: map[string]any{"overflow": "SAT"}, wantFields: []string{"overflow"}},
		{name: "unknown time zone", conf: map[string]any{"timezone": "Mars/Olympus"}, wantFields: []string{"timezone"}},
		{
			name:       "all three at once",
			conf:       map[string]any{"counter": "x8", "overflow": "boom", "timezone": "Mars/Olympus"},
			wantFields: []string{"counter", "overflow", "timezone"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := sdktest.Start(t, saleshistogram.New())
			errs := h.Configure(tt.conf)
			var got []string
			for _, fe := range errs {
				got = append(got, fe.Field)
				if fe.Message == "" {
					t.Errorf("field %s: empty message", fe.Field)
				}
			}
			if !reflect.DeepEqual(got, tt.wantFields) {
				t.Errorf("error fields = %q, want %q (errors %v)", got, tt.wantFields, errs)
			}
		})
	}
}

// A rejected configuration must leave the plugin as it was.
func TestHistogramRejectedConfigKeepsPrevious(t *testing.T) {
	h := sdktest.Start(t, saleshistogram.New())
	if errs := h.Configure(map[string]any{"counter": "u32", "timezone": "Mars/Olympus"}); len(errs) == 0 {
		t.Fatal("bad timezone accepted")
	}
	got := h.Effects(sdk.Order{ID: "1", TS: ts(0), Qty: 1, Cost: 1, Event: "e", Who: "w"})
	if want := []string{"INCRBY", "u8", "8", "1"}; !reflect.DeepEqual(got[0].Args, want) {
		t.Errorf("args = %q, want %q", got[0].Args, want)
	}
}

func TestHistogramDescription(t *testing.T) {
	h := sdktest.Start(t, saleshistogram.New())
	d := h.Description()
	if d.Name != "sales-histogram" {
		t.Errorf("name = %q, want sales-histogram", d.Name)
	}
	if want := []string{"sales_histogram:time_of_day", "sales_histogram:time_of_day:*"}; !reflect.DeepEqual(d.Keys, want) {
		t.Errorf("keys = %q, want %q", d.Keys, want)
	}
	defaults := map[string]any{}
	for _, f := range d.Config {
		if f.Type != sdk.TypeString {
			t.Errorf("field %s type = %v, want string", f.Name, f.Type)
		}
		defaults[f.Name] = f.Default
	}
	if want := map[string]any{"counter": "u8", "overflow": "wrap", "timezone": "UTC"}; !reflect.DeepEqual(defaults, want) {
		t.Errorf("defaults over the wire = %v, want %v", defaults, want)
	}
}

// The views follow the counter type and time zone configured: the report
// decodes what the plugin writes.
func TestHistogramViews(t *testing.T) {
	h := sdktest.Start(t, saleshistogram.New())
	if v := h.Description().Views; len(v) != 2 || v[0].Histogram.Counter != "u8" {
		t.Fatalf("views before configure = %+v, want two u8 histograms", v)
	}
	h.MustConfigure(map[string]any{"counter": "i16", "timezone": "Europe/Paris"})
	v := h.Description().Views
	if len(v) != 2 {
		t.Fatalf("views = %+v, want two", v)
	}
	for i, key := range []string{"sales_histogram:time_of_day", "sales_histogram:time_of_day:*"} {
		want := sdk.HistogramView{Key: key, Counter: "i16", FirstSlot: 1, Buckets: sdk.HourBuckets()}
		if v[i].Histogram == nil || !reflect.DeepEqual(*v[i].Histogram, want) {
			t.Errorf("view %d = %+v, want %+v", i, v[i].Histogram, want)
		}
		if !strings.Contains(v[i].Title, "(Europe/Paris)") {
			t.Errorf("view %d title %q does not name the time zone", i, v[i].Title)
		}
	}
}
