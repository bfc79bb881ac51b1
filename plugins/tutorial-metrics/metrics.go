// Package tutorialmetrics is the three tutorial metrics (sales-histogram,
// events-summary, customer-invoices) as one plugin, served from one
// process: for deployments where latency matters more than keeping the
// metrics apart. See sdk.Combine for what they then share.
package tutorialmetrics

import (
	customerinvoices "github.com/eventhost/eventhost/plugins/customer-invoices"
	eventssummary "github.com/eventhost/eventhost/plugins/events-summary"
	saleshistogram "github.com/eventhost/eventhost/plugins/sales-histogram"
	"github.com/eventhost/eventhost/sdk"
)

// Name is the plugin's name, and so its done marker's.
const Name = "tutorial-metrics"

// Version is the plugin's version.
const Version = "1.0.0"

// New returns the plugin. Its config block is sales-histogram's (the other
// two have no settings).
func New() sdk.Plugin {
	p, err := sdk.Combine(Name, Version, saleshistogram.New(), eventssummary.New(), customerinvoices.New())
	if err != nil {
		// The members are fixed and their fields do not clash: a test
		// covers this, so it cannot happen in a built plugin.
		panic(err)
	}
	return p
}
