// Command poison is a test fixture: an eventhost plugin that records every
// order in a set, except the poison orders its ids name, on which it fails
// the way no per-order error handling can catch: it hangs, it panics in a
// goroutine (killing the process), or it answers more than the gRPC message
// limit. The host must find those orders inside full batches and cost
// nothing else.
package main

import "github.com/eventhost/eventhost/sdk"

func main() { sdk.Serve(&poison{}) }
