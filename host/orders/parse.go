package orders

import (
	"fmt"
	"strings"

	"github.com/eventhost/eventhost/host/keyspace"
	"github.com/eventhost/eventhost/sdk"
)

// field is one field of an order hash as read: the loader keeps a batch's
// fields in one slice of these, not a map per order.
type field struct{ name, value string }

// HoldsOrder reports whether an order hash's fields hold anything but
// eventhost's markers. On a Redis Cluster a hash lost after its effects
// landed gets its markers all the same, as a tombstone, so that a re-send of
// the order is done already: until then the order is not stored.
func HoldsOrder(fields map[string]string) bool {
	for k := range fields {
		if !strings.HasPrefix(k, keyspace.MarkerPrefix) {
			return true
		}
	}
	return false
}

func holdsOrder(fields []field) bool {
	for _, f := range fields {
		if !strings.HasPrefix(f.name, keyspace.MarkerPrefix) {
			return true
		}
	}
	return false
}

// Parse validates the fields of the hash at key for ref against lim. The
// error says which field is wrong and what it held (cut short), or which
// limit the order exceeds and its value. When several fields are wrong, the
// one reported is the same every time: the first by name.
func Parse(ref Ref, key string, fields map[string]string, lim Limits) (sdk.Order, map[string]bool, error) {
	list := make([]field, 0, len(fields))
	for k, v := range fields {
		list = append(list, field{k, v})
	}
	return parse(ref, key, list, lim)
}

// parse is Parse over a hash's fields in any order (a hash has no field
// twice). The order it returns holds fields' strings, not copies.
func parse(ref Ref, key string, fields []field, lim Limits) (sdk.Order, map[string]bool, error) {
	if err := lim.CheckID(ref.ID); err != nil {
		return sdk.Order{}, nil, err
	}
	if len(fields) == 0 {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s does not exist", key)
	}
	if !holdsOrder(fields) {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s holds only eventhost's markers, no order fields (on a Redis Cluster: the order was lost after its effects landed, and the markers wait for its re-send)", key)
	}
	o := sdk.Order{ID: ref.ID, Channel: ref.Channel}
	var done map[string]bool
	var bad error
	badName, size := "", 0
	// The five order fields, as found (a missing one stays unset).
	var ts, qty, cost, event, who *string
	for i := range fields {
		k, v := fields[i].name, fields[i].value
		var err error
		if strings.HasPrefix(k, keyspace.MarkerPrefix) {
			// Ours, stripped before plugins: only their size matters.
			if len(k) > lim.MaxFieldBytes || len(v) > lim.MaxFieldBytes {
				err = lim.checkField(key, k, v)
			}
		} else {
			size += len(k) + len(v)
			err = lim.checkField(key, k, v)
		}
		if err != nil {
			if bad == nil || k < badName {
				bad, badName = err, k
			}
			continue
		}
		switch k {
		case "ts":
			ts = &fields[i].value
			continue
		case "qty":
			qty = &fields[i].value
			continue
		case "cost":
			cost = &fields[i].value
			continue
		case "event":
			event = &fields[i].value
			continue
		case "who":
			who = &fields[i].value
			continue
		}
		if k == keyspace.DoneListField {
			if done == nil {
				done = map[string]bool{}
			}
			for p := range keyspace.DoneListPlugins(v) {
				done[p] = true
			}
			continue
		}
		if strings.HasPrefix(k, keyspace.DonePrefix) {
			if done == nil {
				done = map[string]bool{}
			}
			done[strings.TrimPrefix(k, keyspace.DonePrefix)] = true
			continue
		}
		if strings.HasPrefix(k, keyspace.MarkerPrefix) {
			continue
		}
		if o.Extra == nil {
			o.Extra = map[string]string{}
		}
		o.Extra[k] = v
	}
	if bad != nil {
		return sdk.Order{}, nil, bad
	}
	if size > lim.MaxOrderBytes {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s holds %d bytes, over limits.max_order_bytes = %d", key, size, lim.MaxOrderBytes)
	}
	var err error
	if o.TS, err = count(ts, "ts", lim.MinTS, lim.MaxTS, "ts"); err != nil {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: %w", key, err)
	}
	if o.Qty, err = count(qty, "qty", 1, lim.MaxQty, "qty"); err != nil {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: %w", key, err)
	}
	if o.Cost, err = lim.cost(cost); err != nil {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: %w", key, err)
	}
	if event != nil {
		o.Event = *event
	}
	if o.Event == "" {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: field event is missing or empty", key)
	}
	if who != nil {
		o.Who = *who
	}
	if o.Who == "" {
		return sdk.Order{}, nil, fmt.Errorf("order hash %s: field who is missing or empty", key)
	}
	return o, done, nil
}
