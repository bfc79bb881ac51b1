// Command eventhost-plugin-tutorial-metrics serves the three tutorial
// metrics as one plugin.
package main

import (
	_ "time/tzdata" // sales-histogram's timezone setting must work on hosts without a zoneinfo database

	"github.com/eventhost/eventhost/plugins/tutorial-metrics"
	"github.com/eventhost/eventhost/sdk"
)

func main() { sdk.Serve(tutorialmetrics.New()) }
