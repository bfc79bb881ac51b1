package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// CPU returns the CPU time Redis has used so far, user and system, in
// seconds (INFO cpu). Unlike commandstats' wall-clock times it does not grow
// when a busy machine deschedules Redis.
func CPU(ctx context.Context, rdb redis.Cmdable) (float64, error) {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("info cpu: %w", err)
	}
	var sum float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("info cpu: %s: %w", k, err)
			}
			sum += f
		}
	}
	return sum, nil
}

// CommandStat is one command's line of INFO commandstats.
type CommandStat struct {
	Calls int64
	Usec  float64 // wall-clock microseconds, all calls together
}

// CommandStats returns INFO commandstats by command name (lower case, as
// Redis names them: "evalsha", "config|resetstat").
func CommandStats(ctx context.Context, rdb redis.Cmdable) (map[string]CommandStat, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("info commandstats: %w", err)
	}
	out := map[string]CommandStat{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		var st CommandStat
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				st.Calls, _ = strconv.ParseInt(v, 10, 64)
			} else if v, ok := strings.CutPrefix(kv, "usec="); ok {
				st.Usec, _ = strconv.ParseFloat(v, 64)
			}
		}
		out[name] = st
	}
	return out, nil
}
