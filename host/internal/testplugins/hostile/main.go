// Command hostile is a test fixture: an eventhost plugin that tries to break
// out of the plugin sandbox when it starts and on every order, and reports
// what happened to each attempt through its effects, so an end-to-end test
// can check that the sandbox refused them all while the plugin still did its
// work.
package main

import "github.com/eventhost/eventhost/sdk"

func main() { sdk.Serve(&hostile{}) }
