package ui

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/report"
	"github.com/eventhost/eventhost/sdk"
)

// countingHost serves one leaderboard and counts how often it is asked.
type countingHost struct{ asked atomic.Int64 }

func (h *countingHost) Views() []report.Plugin {
	h.asked.Add(1)
	return []report.Plugin{{Name: "top", Views: []sdk.View{{Title: "Top",
		Leaderboard: &sdk.LeaderboardView{Key: "top", MemberLabel: "WHO", ScoreLabel: "N"}}}}}
}

func (h *countingHost) Health() Health {
	return Health{Ready: true, Plugins: []Plugin{{Name: "top", Up: true}}}
}

// Many viewers cost Redis what one does: one read per refresh, shared. No
// viewer costs nothing. The data is what Redis holds.
func TestOneReadLoopForAllViewers(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	rdb := redistest.Start(t).Client()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rdb.ZAdd(ctx, "top", redisZ(3, "ann"), redisZ(5, "bob"))
	rdb.XAdd(ctx, xadd("dl"))
	host := &countingHost{}
	srv := New(rdb, host, "dl")
	srv.Refresh = 20 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	resp, err := http.Post(base+"/events", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /events: %s, want 405: the dashboard is read-only", resp.Status)
	}
	if n := host.asked.Load(); n != 0 {
		t.Errorf("views read %d times with nobody watching, want 0", n)
	}

	const viewers, updates = 8, 5
	var wg sync.WaitGroup
	got := make([]Update, viewers)
	for i := range viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(base + "/events")
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(nil, 1<<20)
			for n := 0; n < updates && sc.Scan(); {
				if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					if err := json.Unmarshal([]byte(data), &got[i]); err != nil {
						t.Error(err)
					}
					n++
				}
			}
		}()
	}
	wg.Wait()
	// Each viewer saw `updates` messages; shared, that is about `updates`
	// reads (plus the ones between viewers joining), never one per viewer.
	if n := host.asked.Load(); n >= viewers*updates/2 {
		t.Errorf("views read %d times for %d viewers × %d updates: each viewer has its own loop", n, viewers, updates)
	}
	for i, u := range got {
		top := u.Views.Plugins[0].Views[0].Leaderboard
		if top == nil || len(top.Leaders) != 2 || top.Leaders[0].Member != "bob" || top.Leaders[0].Text != "5" || u.Health.DeadLetters != 1 || !u.Health.Ready {
			t.Errorf("viewer %d got %+v (leaderboard %+v), want bob 5 first and 1 dead letter", i, u, top)
		}
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }

func xadd(stream string) *redis.XAddArgs {
	return &redis.XAddArgs{Stream: stream, Values: []string{"order_id", "1"}}
}
