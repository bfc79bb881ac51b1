// Command eventhost-plugin-top-customers serves the top-customers test
// fixture plugin.
package main

import (
	"github.com/eventhost/eventhost/host/internal/testplugins/topcustomers"
	"github.com/eventhost/eventhost/sdk"
)

func main() { sdk.Serve(topcustomers.New()) }
