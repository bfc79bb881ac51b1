package sdk

import "time"

// Order is one purchase order, loaded and validated by the host from the hash
// purchase_order_details:<ID>. Every field below is guaranteed present and
// well formed; a hash that fails validation never reaches a plugin.
type Order struct {
	ID string
	// Channel is the Pub/Sub channel (or stream) the order id arrived on.
	Channel string
	// TS is the purchase time in seconds since the Unix epoch.
	TS int64
	// Qty is the number of tickets, at least 1.
	Qty int64
	// Cost is the order's total price.
	Cost  float64
	Event string
	Who   string
	// Extra holds any other fields of the hash, as stored. It may be nil.
	Extra map[string]string
}

// Time returns TS as a time in UTC.
func (o Order) Time() time.Time { return time.Unix(o.TS, 0).UTC() }
