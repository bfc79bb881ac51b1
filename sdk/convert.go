package sdk

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/eventhost/eventhost/sdk/proto/pluginv1"
)

// The converters below are exported for the host side (sdk/client); plugin
// authors never need them.

// DescriptionToProto converts d for the wire.
func DescriptionToProto(d Description) (*pluginv1.DescribeResponse, error) {
	resp := &pluginv1.DescribeResponse{Name: d.Name, Version: d.Version, Keys: d.Keys, Packed: true, Stream: true}
	for _, f := range d.Config {
		pf := &pluginv1.ConfigField{
			Name: f.Name, Type: pluginv1.ConfigField_Type(f.Type), Required: f.Required, Doc: f.Doc,
		}
		if f.Default != nil {
			b, err := json.Marshal(f.Default)
			if err != nil {
				return nil, fmt.Errorf("encode default of config field %q: %w", f.Name, err)
			}
			pf.DefaultJson = string(b)
		}
		resp.Config = append(resp.Config, pf)
	}
	for _, v := range d.Views {
		resp.Views = append(resp.Views, viewToProto(v))
	}
	return resp, nil
}

// DescriptionFromProto is the inverse of DescriptionToProto.
func DescriptionFromProto(resp *pluginv1.DescribeResponse) (Description, error) {
	d := Description{Name: resp.GetName(), Version: resp.GetVersion(), Keys: resp.GetKeys()}
	for _, pf := range resp.GetConfig() {
		f := Field{Name: pf.GetName(), Type: FieldType(pf.GetType()), Required: pf.GetRequired(), Doc: pf.GetDoc()}
		if pf.GetDefaultJson() != "" {
			if err := json.Unmarshal([]byte(pf.GetDefaultJson()), &f.Default); err != nil {
				return Description{}, fmt.Errorf("decode default of config field %q: %w", f.Name, err)
			}
			if list, ok := f.Default.([]any); ok {
				f.Default = NewConfig(map[string]any{"v": list}).StringList("v")
			}
		}
		d.Config = append(d.Config, f)
	}
	if n := len(resp.GetViews()); n > MaxViews {
		return Description{}, fmt.Errorf("plugin %s declares %d views, more than %d", d.Name, n, MaxViews)
	}
	for _, pv := range resp.GetViews() {
		d.Views = append(d.Views, viewFromProto(pv))
	}
	if err := ValidateViews(d); err != nil {
		return Description{}, fmt.Errorf("plugin %s declares views the host cannot show: %w", d.Name, err)
	}
	return d, nil
}

func viewToProto(v View) *pluginv1.View {
	pv := &pluginv1.View{Title: v.Title}
	switch {
	case v.Histogram != nil:
		h := v.Histogram
		pv.Kind = &pluginv1.View_Histogram{Histogram: &pluginv1.HistogramView{
			Key: h.Key, Counter: h.Counter, FirstSlot: uint32(h.FirstSlot), Buckets: h.Buckets}}
	case v.Table != nil:
		t := &pluginv1.TableView{Key: v.Table.Key, RowLabel: v.Table.RowLabel, SortBy: uint32(v.Table.SortBy)}
		for _, c := range v.Table.Columns {
			t.Columns = append(t.Columns, &pluginv1.TableColumn{Label: c.Label, Suffix: c.Suffix, Decimals: uint32(c.Decimals)})
		}
		pv.Kind = &pluginv1.View_Table{Table: t}
	case v.Leaderboard != nil:
		l := v.Leaderboard
		pv.Kind = &pluginv1.View_Leaderboard{Leaderboard: &pluginv1.LeaderboardView{
			Key: l.Key, Limit: uint32(l.Limit), MemberLabel: l.MemberLabel, ScoreLabel: l.ScoreLabel, Decimals: uint32(l.Decimals)}}
	case v.KeyCount != nil:
		k := v.KeyCount
		pv.Kind = &pluginv1.View_KeyCount{KeyCount: &pluginv1.KeyCountView{
			Pattern: k.Pattern, SizeLabel: k.SizeLabel, KeysLabel: k.KeysLabel}}
	}
	return pv
}

// viewFromProto converts a view as sent. Numbers are clamped into int
// before ValidateViews bounds them, so a huge uint32 cannot wrap.
func viewFromProto(pv *pluginv1.View) View {
	small := func(n uint32) int { return int(min(n, 1<<20)) }
	v := View{Title: pv.GetTitle()}
	if h := pv.GetHistogram(); h != nil {
		v.Histogram = &HistogramView{Key: h.GetKey(), Counter: h.GetCounter(), FirstSlot: small(h.GetFirstSlot()), Buckets: h.GetBuckets()}
	}
	if t := pv.GetTable(); t != nil {
		v.Table = &TableView{Key: t.GetKey(), RowLabel: t.GetRowLabel(), SortBy: small(t.GetSortBy())}
		if len(t.GetColumns()) > MaxColumns {
			v.Table.Columns = make([]TableColumn, MaxColumns+1) // refused by ValidateViews, unread
		} else {
			for _, c := range t.GetColumns() {
				v.Table.Columns = append(v.Table.Columns, TableColumn{Label: c.GetLabel(), Suffix: c.GetSuffix(), Decimals: small(c.GetDecimals())})
			}
		}
	}
	if l := pv.GetLeaderboard(); l != nil {
		v.Leaderboard = &LeaderboardView{Key: l.GetKey(), Limit: small(l.GetLimit()), MemberLabel: l.GetMemberLabel(),
			ScoreLabel: l.GetScoreLabel(), Decimals: small(l.GetDecimals())}
	}
	if k := pv.GetKeyCount(); k != nil {
		v.KeyCount = &KeyCountView{Pattern: k.GetPattern(), SizeLabel: k.GetSizeLabel(), KeysLabel: k.GetKeysLabel()}
	}
	return v
}

// OrderFromProto converts an order sent as a protobuf message.
func OrderFromProto(p *pluginv1.Order) Order {
	return Order{
		ID: p.GetId(), Channel: p.GetChannel(), TS: p.GetTs(), Qty: p.GetQty(), Cost: p.GetCost(),
		Event: p.GetEvent(), Who: p.GetWho(), Extra: p.GetExtra(),
	}
}

// ProcessRequestToProto converts a batch for the wire: in the compact
// encoding when packed (the plugin said it reads it), asking for the answer
// in it too, else as messages.
func ProcessRequestToProto(orders []Order, packed bool) *pluginv1.ProcessRequest {
	if packed {
		return &pluginv1.ProcessRequest{PackedOrders: packOrders(orders), PackedAnswer: true}
	}
	req := &pluginv1.ProcessRequest{Orders: make([]*pluginv1.Order, len(orders))}
	for i, o := range orders {
		req.Orders[i] = &pluginv1.Order{
			Id: o.ID, Channel: o.Channel, Ts: o.TS, Qty: o.Qty, Cost: o.Cost,
			Event: o.Event, Who: o.Who, Extra: o.Extra,
		}
	}
	return req
}

// ProcessRequestFromProto is the inverse of ProcessRequestToProto. It also
// reads a request that lists its orders as messages. The orders' strings
// share req's bytes, which must never be modified again: req is as gRPC
// decoded it, and then only read.
func ProcessRequestFromProto(req *pluginv1.ProcessRequest) ([]Order, error) {
	if len(req.GetOrders()) == 0 {
		return unpackOrders(req.GetPackedOrders())
	}
	orders := make([]Order, len(req.GetOrders()))
	for i, o := range req.GetOrders() {
		orders[i] = OrderFromProto(o)
	}
	return orders, nil
}

// ResultsToProto converts results, one per order of the request, for the
// wire: effects in the compact encoding when packed (the request came in
// it, so the host reads it), else as messages. Error text that is not valid
// UTF-8 is repaired: protobuf refuses to send such a string, which would
// fail the whole batch.
func ResultsToProto(results []Result, packed bool) *pluginv1.ProcessResponse {
	resp := &pluginv1.ProcessResponse{Results: make([]*pluginv1.Result, len(results))}
	for i, r := range results {
		pr := &pluginv1.Result{Index: uint32(i), Error: validText(r.Err), Permanent: r.Permanent}
		switch {
		case len(r.Effects) == 0:
		case packed:
			pr.PackedEffects = packEffects(r.Effects)
		case !validEffects(r.Effects):
			// Messages carry strings, which protobuf refuses unless
			// UTF-8: fail this order rather than the whole answer.
			pr.Error = "an effect holds bytes that are not UTF-8, which the host's older protocol cannot carry; upgrade the host"
			pr.Permanent = true
		default:
			pr.Effects = make([]*pluginv1.Effect, len(r.Effects))
			for j, e := range r.Effects {
				pr.Effects[j] = &pluginv1.Effect{Command: e.Command, Key: e.Key, Args: e.Args}
			}
		}
		resp.Results[i] = pr
	}
	return resp
}

// ResultsFromProto returns one Result per order of a request of n orders,
// from whichever encoding the plugin answered in. Whatever a plugin
// answers, it costs at most its own batch, never a call error: an order it
// answered twice, did not answer, or whose effects are malformed or over
// the bounds (MaxEffects, MaxEffectArgs, MaxArgBytes, MaxAnswerBytes) fails
// alone, permanently; an answer for an order it was not sent means the
// indices cannot be trusted, so every order fails.
//
// The results' strings share resp's bytes fields, which must never be
// modified again: resp is as gRPC decoded it, and then only read.
func ResultsFromProto(resp *pluginv1.ProcessResponse, n int) []Result {
	var s AnswerStore
	return s.ResultsFromProto(resp, n)
}

// ResultsFromProto is the package's ResultsFromProto decoding into s.
func (s *AnswerStore) ResultsFromProto(resp *pluginv1.ProcessResponse, n int) []Result {
	if packed := resp.GetPackedResults(); len(packed) > 0 {
		return s.unpackResults(packed, n)
	}
	results := s.take(n)
	seen := make([]bool, n)
	for _, pr := range resp.GetResults() {
		i := uint64(pr.GetIndex())
		if i >= uint64(n) {
			reason := fmt.Sprintf("malformed answer: the plugin answered for order index %d of a batch of %d, so no answer in it can be matched to its order", i, n)
			for j := range results {
				results[j] = Result{Err: reason, Permanent: true}
			}
			return results
		}
		if seen[i] {
			results[i] = Result{Err: "malformed answer: the plugin answered twice for this order", Permanent: true}
			continue
		}
		seen[i] = true
		r := Result{Err: boundedText(pr.GetError()), Permanent: pr.GetPermanent()}
		var err error
		if packed := pr.GetPackedEffects(); len(packed) > 0 {
			r.Effects, err = unpackEffects(packed)
		} else if len(pr.GetEffects()) > 0 {
			r.Effects, err = effectsFromProto(pr.GetEffects())
		}
		if err != nil {
			// The plugin lied about this order only: fail it, not the batch.
			r = Result{Err: "malformed answer: " + err.Error(), Permanent: true}
		}
		results[i] = r
	}
	for i, ok := range seen {
		if !ok {
			results[i] = Result{Err: "plugin returned no result for this order", Permanent: true}
		}
	}
	return results
}

// effectsFromProto converts one order's effects sent as messages (by a
// plugin built before the compact encoding), within the same bounds as
// unpackEffects.
func effectsFromProto(pes []*pluginv1.Effect) ([]Effect, error) {
	if len(pes) > MaxEffects {
		return nil, fmt.Errorf("%d effects for one order, more than %d", len(pes), MaxEffects)
	}
	effects := make([]Effect, len(pes))
	total := 0
	for j, pe := range pes {
		e := Effect{Command: pe.GetCommand(), Key: pe.GetKey(), Args: pe.GetArgs()}
		if len(e.Args) > MaxEffectArgs {
			return nil, fmt.Errorf("effect %d has %d arguments, more than %d", j, len(e.Args), MaxEffectArgs)
		}
		long := max(len(e.Command), len(e.Key))
		total += len(e.Command) + len(e.Key)
		for _, a := range e.Args {
			long = max(long, len(a))
			total += len(a)
		}
		if long > MaxArgBytes {
			return nil, fmt.Errorf("effect %d holds a string of %d bytes, more than %d", j, long, MaxArgBytes)
		}
		if total > MaxAnswerBytes {
			return nil, fmt.Errorf("effects up to %d hold %d bytes, more than %d for one order", j, total, MaxAnswerBytes)
		}
		effects[j] = e
	}
	return effects, nil
}

// validEffects reports whether every string of effects is valid UTF-8.
func validEffects(effects []Effect) bool {
	for _, e := range effects {
		if !utf8.ValidString(e.Command) || !utf8.ValidString(e.Key) {
			return false
		}
		for _, a := range e.Args {
			if !utf8.ValidString(a) {
				return false
			}
		}
	}
	return true
}

// validText is s with each run of invalid UTF-8 replaced by U+FFFD: a
// protobuf string must be valid UTF-8, and a plugin's error text may quote
// any bytes of an order.
func validText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// boundedText is a plugin's error text, valid UTF-8 and cut to
// MaxErrorBytes.
func boundedText(s string) string {
	if len(s) > MaxErrorBytes {
		s = s[:MaxErrorBytes] + "… (cut)" // a rune split here is repaired below
	}
	return validText(s)
}
