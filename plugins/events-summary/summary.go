// Package eventssummary keeps, per event, the set of its order ids and its
// total sales and tickets, as the tutorial's listener_events_analytics does.
package eventssummary

import "github.com/eventhost/eventhost/sdk"

// Keys written.
const (
	KeySummary   = "sales_summary"
	SalesPrefix  = "sales:"
	FieldSales   = ":total_sales"
	FieldTickets = ":total_tickets_sold"
)

// Summary is the events-summary plugin. It has no settings.
type Summary struct{}

var _ sdk.Plugin = (*Summary)(nil)

// New returns the plugin.
func New() *Summary { return &Summary{} }

// Describe implements sdk.Plugin.
func (*Summary) Describe() sdk.Description {
	return sdk.Description{
		Name:    "events-summary",
		Version: "1.0.0",
		Keys:    []string{KeySummary, SalesPrefix + "*"},
		Views: []sdk.View{{
			Title: "Totals per event",
			Table: &sdk.TableView{
				Key: KeySummary, RowLabel: "EVENT", SortBy: 1,
				Columns: []sdk.TableColumn{
					{Label: "TICKETS", Suffix: FieldTickets},
					{Label: "SALES", Suffix: FieldSales, Decimals: 2},
				},
			},
		}},
	}
}

// Configure implements sdk.Plugin.
func (*Summary) Configure(sdk.Config) error { return nil }

// Handle implements sdk.Plugin.
func (*Summary) Handle(o sdk.Order, out *sdk.Effects) error {
	out.SAdd(out.Concat(SalesPrefix, o.Event), o.ID)
	out.HIncrByFloat(KeySummary, out.Concat(o.Event, FieldSales), o.Cost)
	out.HIncrBy(KeySummary, out.Concat(o.Event, FieldTickets), o.Qty)
	return nil
}
