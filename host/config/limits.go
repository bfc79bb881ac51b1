package config

import (
	"fmt"
	"math"
	"strconv"

	"github.com/hashicorp/hcl/v2"

	"github.com/eventhost/eventhost/host/deadletter"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/policy"
	"github.com/eventhost/eventhost/sdk"
)

// limitsSchema is the limits block: the bounds every order must keep
// (see orders.Limits, which names each in its dead letters by these names).
type limitsSchema struct {
	MaxIDBytes    *int     `hcl:"max_id_bytes,optional"`
	MaxOrderBytes *int     `hcl:"max_order_bytes,optional"`
	MaxFieldBytes *int     `hcl:"max_field_bytes,optional"`
	MaxQty        *int64   `hcl:"max_qty,optional"`
	MaxCost       *float64 `hcl:"max_cost,optional"`
	CostDecimals  *int     `hcl:"cost_decimals,optional"`
	MinTS         *int64   `hcl:"min_ts,optional"`
	MaxTS         *int64   `hcl:"max_ts,optional"`

	MaxEffectsPerOrder     *int     `hcl:"max_effects_per_order,optional"`
	MaxEffectBytesPerOrder *int     `hcl:"max_effect_bytes_per_order,optional"`
	MaxBitfieldBits        *int64   `hcl:"max_bitfield_bits,optional"`
	Body                   hcl.Body `hcl:",body"`
}

// buildEffectLimits reads the limits on what one plugin may write for one
// order (see policy.Limits); absent values keep policy's defaults.
func buildEffectLimits(diags *hcl.Diagnostics, raw *limitsSchema) policy.Limits {
	var lim policy.Limits
	if raw == nil {
		return lim
	}
	check := func(name string, v *int64, lo, hi int64) int64 {
		if v == nil {
			return 0
		}
		if *v < lo || *v > hi {
			*diags = append(*diags, errorAt(attrRange(raw.Body, name), "Invalid limit",
				fmt.Sprintf("limits.%s = %d must be between %d and %d.", name, *v, lo, hi)))
		}
		return *v
	}
	widen := func(v *int) *int64 {
		if v == nil {
			return nil
		}
		n := int64(*v)
		return &n
	}
	lim.MaxEffects = int(check("max_effects_per_order", widen(raw.MaxEffectsPerOrder), 1, sdk.MaxEffects))
	lim.MaxBytes = int(check("max_effect_bytes_per_order", widen(raw.MaxEffectBytesPerOrder), 64, sdk.MaxMessageBytes/4))
	// Redis' own bound on a string is 512 MB (2^32 bits).
	lim.MaxBitfieldBits = check("max_bitfield_bits", raw.MaxBitfieldBits, 64, 1<<32)
	return lim
}

// batchBytesBudget bounds batch.max_orders × limits.max_order_bytes: a
// quarter of what one plugin call may carry, which leaves room for the
// encoding's per-field overhead (many tiny extra fields cost more on the
// wire than their bytes) and for the effects coming back.
const batchBytesBudget = sdk.MaxMessageBytes / 4

// exactDigits is how many significant decimal digits a float64 keeps
// exactly: a cost with more would not add up to the cent.
const exactDigits = 15

func buildLimits(diags *hcl.Diagnostics, raw *limitsSchema, maxOrders int, batchBody hcl.Body) orders.Limits {
	lim := orders.DefaultLimits()
	if raw == nil {
		checkBatchBytes(diags, lim, maxOrders, batchBody, nil)
		return lim
	}
	at := func(name string) *hcl.Range { return attrRange(raw.Body, name) }
	bad := func(name, detail string) {
		*diags = append(*diags, errorAt(at(name), "Invalid limit", "limits."+name+" "+detail))
	}
	lim.MaxIDBytes = deref(raw.MaxIDBytes, lim.MaxIDBytes)
	lim.MaxOrderBytes = deref(raw.MaxOrderBytes, lim.MaxOrderBytes)
	lim.MaxFieldBytes = deref(raw.MaxFieldBytes, lim.MaxFieldBytes)
	lim.MaxQty = deref(raw.MaxQty, lim.MaxQty)
	lim.MaxCost = deref(raw.MaxCost, lim.MaxCost)
	lim.CostDecimals = deref(raw.CostDecimals, lim.CostDecimals)
	lim.MinTS = deref(raw.MinTS, lim.MinTS)
	lim.MaxTS = deref(raw.MaxTS, lim.MaxTS)

	switch {
	case lim.MaxIDBytes < 1:
		bad("max_id_bytes", "must be at least 1.")
	case lim.MaxIDBytes > deadletter.MaxIDBytes:
		bad("max_id_bytes", fmt.Sprintf("must be at most %d: a dead letter keeps no longer an id, and a replay needs the whole id.", deadletter.MaxIDBytes))
	}
	if lim.MaxOrderBytes < 1 {
		bad("max_order_bytes", "must be at least 1.")
	}
	switch {
	case lim.MaxFieldBytes < 1:
		bad("max_field_bytes", "must be at least 1.")
	case lim.MaxFieldBytes > lim.MaxOrderBytes && lim.MaxOrderBytes >= 1:
		bad("max_field_bytes", fmt.Sprintf("= %d is more than limits.max_order_bytes = %d, which bounds the whole hash.", lim.MaxFieldBytes, lim.MaxOrderBytes))
	}
	if lim.MaxQty < 1 {
		bad("max_qty", "must be at least 1.")
	}
	switch {
	case lim.CostDecimals < 0 || lim.CostDecimals > 9:
		bad("cost_decimals", "must be between 0 and 9.")
	case math.IsNaN(lim.MaxCost) || lim.MaxCost <= 0:
		bad("max_cost", "must be positive.")
	case intDigits(lim.MaxCost)+lim.CostDecimals > exactDigits:
		bad("max_cost", fmt.Sprintf("= %s with limits.cost_decimals = %d allows costs of %d digits; a float64 keeps %d exactly, so totals would drift. Lower one of them.",
			strconv.FormatFloat(lim.MaxCost, 'f', -1, 64), lim.CostDecimals, intDigits(lim.MaxCost)+lim.CostDecimals, exactDigits))
	}
	switch {
	case lim.MinTS < 1:
		bad("min_ts", "must be at least 1 (a unix time in seconds).")
	case lim.MaxTS < lim.MinTS:
		bad("max_ts", fmt.Sprintf("= %d is before limits.min_ts = %d.", lim.MaxTS, lim.MinTS))
	}
	checkBatchBytes(diags, lim, maxOrders, batchBody, at("max_order_bytes"))
	return lim
}

// checkBatchBytes refuses a batch that could outgrow a plugin call: the
// host would take the order's fault for the plugin's.
func checkBatchBytes(diags *hcl.Diagnostics, lim orders.Limits, maxOrders int, batchBody hcl.Body, r *hcl.Range) {
	if maxOrders < 1 || lim.MaxOrderBytes < 1 || int64(maxOrders)*int64(lim.MaxOrderBytes) <= batchBytesBudget {
		return
	}
	if r == nil && batchBody != nil {
		r = attrRange(batchBody, "max_orders")
	}
	*diags = append(*diags, errorAt(r, "Batch too large for a plugin call",
		fmt.Sprintf("batch.max_orders = %d times limits.max_order_bytes = %d is %d bytes; keep it within %d (a quarter of the %d bytes one plugin call may carry).",
			maxOrders, lim.MaxOrderBytes, int64(maxOrders)*int64(lim.MaxOrderBytes), batchBytesBudget, sdk.MaxMessageBytes)))
}

// intDigits is how many decimal digits f has before its point.
func intDigits(f float64) int {
	if f < 1 {
		return 1
	}
	if f >= 1e300 {
		return 301
	}
	return len(strconv.FormatFloat(math.Floor(f), 'f', 0, 64))
}
