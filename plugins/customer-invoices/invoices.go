// Package customerinvoices keeps each customer's set of order ids, as the
// tutorial's listener_customer_purchases does.
package customerinvoices

import "github.com/eventhost/eventhost/sdk"

// InvoicesPrefix starts the key of each customer's set.
const InvoicesPrefix = "invoices:"

// Invoices is the customer-invoices plugin. It has no settings.
type Invoices struct{}

var _ sdk.Plugin = (*Invoices)(nil)

// New returns the plugin.
func New() *Invoices { return &Invoices{} }

// Describe implements sdk.Plugin.
func (*Invoices) Describe() sdk.Description {
	return sdk.Description{
		Name: "customer-invoices", Version: "1.0.0", Keys: []string{InvoicesPrefix + "*"},
		Views: []sdk.View{{
			Title:    "Customers by number of invoices",
			KeyCount: &sdk.KeyCountView{Pattern: InvoicesPrefix + "*", SizeLabel: "INVOICES", KeysLabel: "CUSTOMERS"},
		}},
	}
}

// Configure implements sdk.Plugin.
func (*Invoices) Configure(sdk.Config) error { return nil }

// Handle implements sdk.Plugin.
func (*Invoices) Handle(o sdk.Order, out *sdk.Effects) error {
	out.SAdd(out.Concat(InvoicesPrefix, o.Who), o.ID)
	return nil
}
