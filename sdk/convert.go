package sdk

import (
	"encoding/json"
	"fmt"

	"github.com/eventhost/eventhost/sdk/proto/pluginv1"
)

// The converters below are exported for the host side (sdk/client); plugin
// authors never need them.

// DescriptionToProto converts d for the wire.
func DescriptionToProto(d Description) (*pluginv1.DescribeResponse, error) {
	resp := &pluginv1.DescribeResponse{Name: d.Name, Version: d.Version, Keys: d.Keys, Packed: true}
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
	return d, nil
}

// OrderFromProto converts an order sent as a protobuf message.
func OrderFromProto(p *pluginv1.Order) Order {
	return Order{
		ID: p.GetId(), Channel: p.GetChannel(), TS: p.GetTs(), Qty: p.GetQty(), Cost: p.GetCost(),
		Event: p.GetEvent(), Who: p.GetWho(), Extra: p.GetExtra(),
	}
}

// ProcessRequestToProto converts a batch for the wire: in the compact
// encoding when packed (the plugin said it reads it), else as messages.
func ProcessRequestToProto(orders []Order, packed bool) *pluginv1.ProcessRequest {
	if packed {
		return &pluginv1.ProcessRequest{PackedOrders: packOrders(orders)}
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
// reads a request that lists its orders as messages.
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
// it, so the host reads it), else as messages.
func ResultsToProto(results []Result, packed bool) *pluginv1.ProcessResponse {
	resp := &pluginv1.ProcessResponse{Results: make([]*pluginv1.Result, len(results))}
	for i, r := range results {
		pr := &pluginv1.Result{Index: uint32(i), Error: r.Err, Permanent: r.Permanent}
		switch {
		case len(r.Effects) == 0:
		case packed:
			pr.PackedEffects = packEffects(r.Effects)
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

// ResultsFromProto returns one Result per order of a request of n orders. A
// plugin that answers for an order twice, for an order it was not sent, or
// not at all is lying: that is an error, or for a missing answer a failed
// Result, never a silent drop.
func ResultsFromProto(resp *pluginv1.ProcessResponse, n int) ([]Result, error) {
	results := make([]Result, n)
	seen := make([]bool, n)
	for _, pr := range resp.GetResults() {
		i := int(pr.GetIndex())
		if i >= n {
			return nil, fmt.Errorf("plugin answered for order index %d of a batch of %d", i, n)
		}
		if seen[i] {
			return nil, fmt.Errorf("plugin answered twice for order index %d", i)
		}
		seen[i] = true
		r := Result{Err: pr.GetError(), Permanent: pr.GetPermanent()}
		if packed := pr.GetPackedEffects(); len(packed) > 0 {
			var err error
			if r.Effects, err = unpackEffects(packed); err != nil {
				// The plugin lied about this order only: fail it, not the batch.
				r = Result{Err: "malformed answer: " + err.Error(), Permanent: true}
			}
		} else if len(pr.GetEffects()) > 0 {
			r.Effects = make([]Effect, len(pr.GetEffects()))
			for j, e := range pr.GetEffects() {
				r.Effects[j] = Effect{Command: e.GetCommand(), Key: e.GetKey(), Args: e.GetArgs()}
			}
		}
		results[i] = r
	}
	for i, ok := range seen {
		if !ok {
			results[i] = Result{Err: "plugin returned no result for this order", Permanent: true}
		}
	}
	return results, nil
}
