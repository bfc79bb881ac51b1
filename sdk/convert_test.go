package sdk

import (
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/eventhost/eventhost/sdk/proto/pluginv1"
)

// Whatever a plugin answers costs at most its own orders: ResultsFromProto
// never fails the call, and each result is either the plugin's verdict or a
// failure naming what was wrong.
func TestResultsFromProtoBoundsEveryAnswer(t *testing.T) {
	ok := func(i uint32) *pluginv1.Result {
		return &pluginv1.Result{Index: i, Effects: []*pluginv1.Effect{{Command: "SADD", Key: "k", Args: []string{"m"}}}}
	}
	many := func(n int) []string { return make([]string, n) }
	tests := []struct {
		name string
		resp []*pluginv1.Result
		// want is, per order, "" for the plugin's own answer or a
		// substring of the failure.
		want []string
	}{
		{"well formed", []*pluginv1.Result{ok(0), ok(1)}, []string{"", ""}},
		{"missing answer", []*pluginv1.Result{ok(1)}, []string{"no result for this order", ""}},
		{"answered twice", []*pluginv1.Result{ok(0), ok(0), ok(1)}, []string{"answered twice", ""}},
		{"answer for an order not sent", []*pluginv1.Result{ok(0), ok(1), ok(2)},
			[]string{"order index 2 of a batch of 2", "order index 2 of a batch of 2"}},
		{"index far out of range", []*pluginv1.Result{ok(0), ok(1 << 31)},
			[]string{"order index 2147483648", "order index 2147483648"}},
		{"too many effects as messages", []*pluginv1.Result{
			{Index: 0, Effects: make([]*pluginv1.Effect, MaxEffects+1)}, ok(1)},
			[]string{"10001 effects for one order", ""}},
		{"too many arguments as messages", []*pluginv1.Result{
			{Index: 0, Effects: []*pluginv1.Effect{{Command: "SADD", Key: "k", Args: many(MaxEffectArgs + 1)}}}, ok(1)},
			[]string{"1001 arguments", ""}},
		{"string too long as messages", []*pluginv1.Result{ok(0),
			{Index: 1, Effects: []*pluginv1.Effect{{Command: "SADD", Key: "k", Args: []string{strings.Repeat("x", MaxArgBytes+1)}}}}},
			[]string{"", "a string of 67108865 bytes"}},
		{"too many bytes as messages", []*pluginv1.Result{ok(0),
			{Index: 1, Effects: func() []*pluginv1.Effect {
				big := strings.Repeat("x", MaxArgBytes)
				out := make([]*pluginv1.Effect, MaxAnswerBytes/MaxArgBytes+1)
				for i := range out {
					out[i] = &pluginv1.Effect{Command: "SADD", Key: "k", Args: []string{big}}
				}
				return out
			}()}},
			[]string{"", "more than 268435456 for one order"}},
		{"packed string too long", []*pluginv1.Result{ok(0),
			{Index: 1, PackedEffects: packEffects([]Effect{{Command: "SET", Key: strings.Repeat("k", MaxArgBytes+1)}})}},
			[]string{"", "a string of 67108865 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ResultsFromProto(&pluginv1.ProcessResponse{Results: tt.resp}, len(tt.want))
			if len(got) != len(tt.want) {
				t.Fatalf("%d results for %d orders", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				switch {
				case w == "" && (got[i].Err != "" || len(got[i].Effects) != 1):
					t.Errorf("order %d: %+v, want the plugin's one effect", i, got[i])
				case w != "" && (!strings.Contains(got[i].Err, w) || !got[i].Permanent || got[i].Effects != nil):
					t.Errorf("order %d: err %q (permanent %v, %d effects), want a permanent failure mentioning %q",
						i, got[i].Err, got[i].Permanent, len(got[i].Effects), w)
				}
			}
		})
	}
}

// A plugin's error text may quote any bytes of an order. Protobuf refuses to
// send a string that is not UTF-8, which failed the whole batch: the plugin
// side repairs it, and the host side bounds its length.
func TestErrorTextIsValidAndBounded(t *testing.T) {
	results := []Result{{Err: "bad field \xff\xfe in order 1"}, {Err: strings.Repeat("é", MaxErrorBytes)}}
	resp := ResultsToProto(results, true)
	b, err := proto.Marshal(resp)
	if err != nil {
		t.Fatalf("an answer with invalid UTF-8 in an error cannot be sent: %v", err)
	}
	var back pluginv1.ProcessResponse
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got := ResultsFromProto(&back, 2)
	if want := "bad field \uFFFD in order 1"; got[0].Err != want {
		t.Errorf("error text %q, want %q", got[0].Err, want)
	}
	if e := got[1].Err; len(e) > MaxErrorBytes+len("… (cut)") || !strings.HasSuffix(e, "… (cut)") || !utf8.ValidString(e) {
		t.Errorf("a %d-byte error text came back as %d bytes (valid UTF-8: %v), want it cut to %d", len(results[1].Err), len(e), utf8.ValidString(e), MaxErrorBytes)
	}
}

// flood answers with one effect more than the host accepts for order "many"
// and with an argument over MaxArgBytes for order "long".
type flood struct{}

func (flood) Describe() Description  { return Description{Name: "flood", Keys: []string{"f:*"}} }
func (flood) Configure(Config) error { return nil }
func (flood) Handle(o Order, out *Effects) error {
	switch o.ID {
	case "many":
		for range MaxEffects + 1 {
			out.SAdd("f:k", o.ID)
		}
	case "long":
		out.SAdd("f:k", strings.Repeat("x", MaxArgBytes+1))
	default:
		out.SAdd("f:k", o.ID)
	}
	return nil
}

// A plugin's answer over the host's bounds fails that order where it is
// made, with a message its author can act on (sdktest sees it too), instead
// of as a malformed answer at the host.
func TestProcessBatchBoundsAnswers(t *testing.T) {
	got := ProcessBatch(flood{}, []Order{{ID: "many"}, {ID: "ok"}, {ID: "long"}})
	for i, want := range []string{"answer for order many: 10001 effects, more than the 10000", "", "answer for order long: effect 0 holds a string of 67108865 bytes"} {
		r := got[i]
		switch {
		case want == "" && (r.Err != "" || len(r.Effects) != 1):
			t.Errorf("order %d: %+v, want its one effect", i, r.Err)
		case want != "" && (!strings.HasPrefix(r.Err, want) || !r.Permanent || r.Effects != nil):
			t.Errorf("order %d: err %q (permanent %v), want a permanent failure starting %q", i, r.Err, r.Permanent, want)
		}
	}
}
