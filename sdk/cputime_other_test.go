//go:build !unix

package sdk

import (
	"testing"
	"time"
)

// cpuTime is 0 where getrusage is not to be had: cpu-ns/order reads 0.
func cpuTime(*testing.B) time.Duration { return 0 }
