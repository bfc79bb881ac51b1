// Command liar is a test fixture: an eventhost plugin that misbehaves on
// purpose (errors, forbidden commands, keys outside its patterns, hangs,
// crashes) for the orders its config selects, so the host's fault handling
// can be tested end to end against a real plugin process.
package main

import "github.com/eventhost/eventhost/sdk"

func main() { sdk.Serve(&liar{}) }
