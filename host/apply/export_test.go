package apply

import (
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// CutScript makes a run its script with each key of cut replaced by its
// value, for BenchmarkApplyScriptParts. A text that apply.lua no longer
// holds is an error, so the benchmark cannot measure a cut that cuts
// nothing.
func CutScript(a *Applier, cut map[string]string) error {
	src := a.scriptSrc.(string)
	for from, to := range cut {
		if !strings.Contains(src, from) {
			return fmt.Errorf("apply.lua has no %q", from)
		}
		src = strings.ReplaceAll(src, from, to)
	}
	a.scriptSrc, a.scriptSHA = src, redis.NewScript(src).Hash()
	return nil
}
