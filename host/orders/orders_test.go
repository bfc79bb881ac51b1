package orders_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/sdk"
)

const key = "purchase_order_details:42"

// valid returns a complete hash with overrides applied; an override of
// "<delete>" removes the field.
func valid(overrides ...string) map[string]string {
	f := map[string]string{"ts": "1700000000", "qty": "3", "cost": "12.5", "event": "rock", "who": "ann"}
	for i := 0; i+1 < len(overrides); i += 2 {
		if overrides[i+1] == "<delete>" {
			delete(f, overrides[i])
			continue
		}
		f[overrides[i]] = overrides[i+1]
	}
	return f
}

func TestParse(t *testing.T) {
	ref := orders.Ref{ID: "42", Channel: "purchase_orders"}
	tests := []struct {
		name     string
		ref      orders.Ref
		fields   map[string]string
		want     sdk.Order
		wantDone map[string]bool
	}{
		{
			name:   "all fields",
			ref:    ref,
			fields: valid(),
			want:   sdk.Order{ID: "42", Channel: "purchase_orders", TS: 1700000000, Qty: 3, Cost: 12.5, Event: "rock", Who: "ann"},
		},
		{
			name:   "integer cost and zero cost",
			ref:    ref,
			fields: valid("cost", "0"),
			want:   sdk.Order{ID: "42", Channel: "purchase_orders", TS: 1700000000, Qty: 3, Cost: 0, Event: "rock", Who: "ann"},
		},
		{
			name:   "extra field kept",
			ref:    ref,
			fields: valid("seat", "A12", "note", ""),
			want: sdk.Order{ID: "42", Channel: "purchase_orders", TS: 1700000000, Qty: 3, Cost: 12.5, Event: "rock", Who: "ann",
				Extra: map[string]string{"seat": "A12", "note": ""}},
		},
		{
			name:     "done markers stripped and reported, other eventhost fields stripped",
			ref:      ref,
			fields:   valid("eventhost:done:x", "1700000001000", "eventhost:done:sales-histogram", "1", "eventhost:attempts", "2", "seat", "B1"),
			want:     sdk.Order{ID: "42", Channel: "purchase_orders", TS: 1700000000, Qty: 3, Cost: 12.5, Event: "rock", Who: "ann", Extra: map[string]string{"seat": "B1"}},
			wantDone: map[string]bool{"x": true, "sales-histogram": true},
		},
		{
			name:   "only eventhost fields beyond the required ones: Extra stays nil",
			ref:    ref,
			fields: valid("eventhost:other", "z"),
			want:   sdk.Order{ID: "42", Channel: "purchase_orders", TS: 1700000000, Qty: 3, Cost: 12.5, Event: "rock", Who: "ann"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, done, err := orders.Parse(tt.ref, key, tt.fields, orders.DefaultLimits())
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("order = %#v\nwant    %#v", got, tt.want)
			}
			if !reflect.DeepEqual(done, tt.wantDone) {
				t.Errorf("done = %v, want %v", done, tt.wantDone)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	ref := orders.Ref{ID: "42", Channel: "purchase_orders"}
	tests := []struct {
		name   string
		ref    orders.Ref
		fields map[string]string
		want   []string // substrings of the error
	}{
		{name: "empty id", ref: orders.Ref{Channel: "c"}, fields: valid(), want: []string{"empty order id"}},
		{name: "empty hash", ref: ref, fields: map[string]string{}, want: []string{key, "does not exist"}},
		{name: "nil hash", ref: ref, fields: nil, want: []string{key, "does not exist"}},
		{name: "qty 0", ref: ref, fields: valid("qty", "0"), want: []string{key, `field qty = "0" is not a positive integer`}},
		{name: "qty -1", ref: ref, fields: valid("qty", "-1"), want: []string{key, `field qty = "-1"`}},
		{name: "qty abc", ref: ref, fields: valid("qty", "abc"), want: []string{key, `field qty = "abc"`}},
		{name: "qty 1.5", ref: ref, fields: valid("qty", "1.5"), want: []string{key, `field qty = "1.5"`}},
		{name: "qty missing", ref: ref, fields: valid("qty", "<delete>"), want: []string{key, "field qty is missing"}},
		{name: "ts 0", ref: ref, fields: valid("ts", "0"), want: []string{key, `field ts = "0" is before limits.min_ts = 946684800`}},
		{name: "ts abc", ref: ref, fields: valid("ts", "abc"), want: []string{key, `field ts = "abc"`}},
		{name: "ts 1.5", ref: ref, fields: valid("ts", "1.5"), want: []string{key, `field ts = "1.5"`}},
		{name: "ts missing", ref: ref, fields: valid("ts", "<delete>"), want: []string{key, "field ts is missing"}},
		{name: "cost abc", ref: ref, fields: valid("cost", "abc"), want: []string{key, `field cost = "abc" is not a non-negative number`}},
		{name: "qty +5", ref: ref, fields: valid("qty", "+5"), want: []string{key, `field qty = "+5" is not a positive integer`}},
		{name: "qty with a space", ref: ref, fields: valid("qty", " 5"), want: []string{key, `field qty = " 5"`}},
		{name: "ts -1", ref: ref, fields: valid("ts", "-1"), want: []string{key, `field ts = "-1" is not a unix time in seconds`}},
		{name: "cost -1", ref: ref, fields: valid("cost", "-1"), want: []string{key, `field cost = "-1"`}},
		{name: "cost NaN", ref: ref, fields: valid("cost", "NaN"), want: []string{key, `field cost = "NaN"`}},
		{name: "cost Inf", ref: ref, fields: valid("cost", "Inf"), want: []string{key, `field cost = "Inf"`}},
		{name: "cost -Inf", ref: ref, fields: valid("cost", "-Inf"), want: []string{key, `field cost = "-Inf"`}},
		{name: "cost overflows to Inf", ref: ref, fields: valid("cost", "1e400"), want: []string{key, `field cost = "1e400"`}},
		{name: "cost missing", ref: ref, fields: valid("cost", "<delete>"), want: []string{key, "field cost is missing"}},
		{name: "event empty", ref: ref, fields: valid("event", ""), want: []string{key, "field event is missing or empty"}},
		{name: "event missing", ref: ref, fields: valid("event", "<delete>"), want: []string{key, "field event is missing or empty"}},
		{name: "who empty", ref: ref, fields: valid("who", ""), want: []string{key, "field who is missing or empty"}},
		{name: "only markers", ref: ref, fields: map[string]string{"eventhost:done:x": "1"}, want: []string{key, "holds only eventhost's markers, no order fields"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, done, err := orders.Parse(tt.ref, key, tt.fields, orders.DefaultLimits())
			if err == nil {
				t.Fatalf("Parse accepted %v: %+v", tt.fields, o)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !reflect.DeepEqual(o, sdk.Order{}) || done != nil {
				t.Errorf("on error got order %+v and done %v, want zero values", o, done)
			}
		})
	}
}

func TestRefFor(t *testing.T) {
	listens := func(ch string) bool { return ch == "a" }
	tests := []struct {
		ref    orders.Ref
		plugin string
		want   bool
	}{
		{orders.Ref{Channel: "a"}, "p", true},
		{orders.Ref{Channel: "b"}, "p", false},
		{orders.Ref{Channel: "b", Only: []string{"p"}}, "p", true}, // catch-up: Only overrides the channel
		{orders.Ref{Channel: "a", Only: []string{"q"}}, "p", false},
		{orders.Ref{Channel: "a", Only: []string{}}, "p", false}, // empty, not nil: nobody
	}
	for _, tt := range tests {
		if got := tt.ref.For(tt.plugin, listens); got != tt.want {
			t.Errorf("%+v.For(%q) = %v, want %v", tt.ref, tt.plugin, got, tt.want)
		}
	}
}

// reply is an error reply from Redis, as go-redis reports one.
type reply string

func (r reply) Error() string { return string(r) }
func (reply) RedisError()     {}

var _ redis.Error = reply("")

// TestRoundTripError: a reply about the key (WRONGTYPE) is the key's
// fault, and the order is rejected; a reply about the server's state
// (LOADING after a restart) or a connection error is the round trip's, and
// the batch is retried. Rejecting on LOADING dead-lettered good orders.
func TestRoundTripError(t *testing.T) {
	wrongType := reply("WRONGTYPE Operation against a key holding the wrong kind of value")
	loading := reply("LOADING Redis is loading the dataset in memory")
	refused := errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	tests := []struct {
		name string
		errs []error
		want error
	}{
		{"no error", []error{nil, nil}, nil},
		{"key's own reply", []error{nil, wrongType}, nil},
		{"loading", []error{nil, loading}, loading},
		{"loading after a key's reply", []error{wrongType, loading}, loading},
		{"busy script", []error{reply("BUSY Redis is busy running a script.")}, reply("BUSY Redis is busy running a script.")},
		{"connection", []error{refused, refused}, refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmds := make([]*redis.MapStringStringCmd, len(tt.errs))
			for i, err := range tt.errs {
				cmds[i] = redis.NewMapStringStringCmd(context.Background(), "hgetall", key)
				if err != nil {
					cmds[i].SetErr(err)
				}
			}
			if got := orders.RoundTripError(cmds); got != tt.want {
				t.Errorf("RoundTripError = %v, want %v", got, tt.want)
			}
		})
	}
}
