// Command eventhost-plugin-sales-histogram serves the sales-histogram plugin.
package main

import (
	_ "time/tzdata" // the timezone setting must work on hosts without a zoneinfo database

	"github.com/eventhost/eventhost/plugins/sales-histogram"
	"github.com/eventhost/eventhost/sdk"
)

func main() { sdk.Serve(saleshistogram.New()) }
