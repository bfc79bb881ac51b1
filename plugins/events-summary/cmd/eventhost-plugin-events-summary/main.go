// Command eventhost-plugin-events-summary serves the events-summary plugin.
package main

import (
	"github.com/eventhost/eventhost/plugins/events-summary"
	"github.com/eventhost/eventhost/sdk"
)

func main() { sdk.Serve(eventssummary.New()) }
