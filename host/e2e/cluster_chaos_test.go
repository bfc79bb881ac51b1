package e2e

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/apply"
	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/publish"
)

// TestClusterChaos is issue 11's proof of exactly-once on a Redis Cluster
// (3 masters, 3 replicas): orders flow through the stream source to two
// hosts while
//   - the histogram's master refuses writes for 2 s (NOREPLICAS) while the
//     others take them, so batches land partly and are retried;
//   - the master holding sales_summary (written by every order) is killed
//     with SIGKILL, its replica takes over, and it comes back as a replica;
//   - 200 slots, among them that of the histogram every order writes, are
//     resharded to another master, key by key, while orders flow;
//   - one host is killed with SIGKILL and started again.
//
// Afterwards every key equals the tutorial's listeners replayed on a single
// server, no stream entry is pending, and the idempotency records hold only
// pairs marked done; once recordKeep has passed a sweep leaves none.
//
// The producer stores each chunk with WAIT 1 on the node it went to (and
// stores it again on an error), as a producer must that wants its orders
// to outlive a failover; a stored order lost by the failover would be the
// producer's loss, not the host's.
func TestClusterChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	t.Parallel()
	ctx := context.Background()
	cl := redistest.StartCluster(t, 3)
	cc := cl.Client()
	cfg := clusterConfig(t, cl, true, "")
	hosts := []*host{startHost(t, nil, cfg), startHost(t, nil, cfg)}
	started := append([]*host(nil), hosts...)

	// The first backlog orders go out at once, so that the hosts are busy
	// when the first fault comes; the rest at rate.
	const n, backlog, rate = 16000, 6000, 800.0
	gen := publish.NewGenerator(1111)
	all := make([]publish.Order, n)
	for i := range all {
		all[i] = gen.Next()
	}
	var (
		mu       sync.Mutex
		timeline []string
		resent   int
	)
	start := time.Now()
	note := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		timeline = append(timeline, fmt.Sprintf("%6.1fs ", time.Since(start).Seconds())+fmt.Sprintf(format, args...))
	}
	defer func() {
		if t.Failed() {
			t.Logf("timeline:\n%s", strings.Join(timeline, "\n"))
		}
	}()

	// The hosts are frozen while the backlog is stored, so that the first
	// fault finds them with all of it to apply: a host that had caught up
	// would meet no refusal, since the producer cannot store a chunk
	// either while a master refuses writes.
	signalHosts(t, hosts, syscall.SIGSTOP)
	t.Cleanup(func() { // before the hosts' own cleanup stops them
		for _, h := range hosts {
			_ = h.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	produced := make(chan error, 1)
	var stored atomic.Int64
	go func() {
		const chunk = 40
		for i := 0; i < n; i += chunk {
			due := start.Add(time.Duration(float64(max(i-backlog, 0)) / rate * float64(time.Second)))
			time.Sleep(time.Until(due))
			part := all[i:min(i+chunk, n)]
			for try := 0; ; try++ {
				err := durableChunk(ctx, cc, part)
				if err == nil {
					break
				}
				if try == 0 {
					note("producer: chunk at %d failed, storing it again: %v", i, err)
				}
				mu.Lock()
				resent++
				mu.Unlock()
				if time.Since(due) > time.Minute {
					produced <- fmt.Errorf("producer stuck at order %d: %v", i, err)
					return
				}
				cc.ReloadState(ctx)
				time.Sleep(100 * time.Millisecond)
			}
			stored.Store(int64(i + len(part)))
		}
		produced <- nil
	}()

	// 0. One master refuses writes (NOREPLICAS) while the others take
	// them: every batch's slots there fail after its slots elsewhere
	// landed, and each retry must skip those (the records). It refuses
	// until a host met it, and then 2 s more.
	waitFor(t, time.Minute, "the backlog to be stored", func() bool { return stored.Load() >= backlog })
	refusing := masterAddr(t, ctx, cc, "sales_histogram:time_of_day")
	rc := redis.NewClient(&redis.Options{Addr: refusing})
	defer rc.Close()
	note("master %s (the histogram's) refuses writes: min-replicas-to-write 5", refusing)
	if err := rc.ConfigSet(ctx, "min-replicas-to-write", "5").Err(); err != nil {
		t.Fatal(err)
	}
	signalHosts(t, hosts, syscall.SIGCONT)
	note("hosts go on, with the backlog to apply")
	met := func() bool {
		for _, h := range hosts {
			for _, m := range pausedLine.FindAllStringSubmatch(h.log.String(), -1) {
				if m[1] == noReplicas {
					return true
				}
			}
		}
		return false
	}
	for deadline := time.Now().Add(20 * time.Second); !met() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	note("a host met the refusal: %v", met())
	time.Sleep(2 * time.Second)
	if err := rc.ConfigSet(ctx, "min-replicas-to-write", "0").Err(); err != nil {
		t.Fatal(err)
	}
	note("master %s takes writes again", refusing)

	// 1. Kill the master of the hot key; its replica takes over; it
	// comes back as a replica.
	time.Sleep(time.Second)
	victim := masterAddr(t, ctx, cc, "sales_summary")
	replica := replicaOf(t, ctx, cl, victim)
	note("SIGKILL master %s (sales_summary, stream on %s); its replica is %s", victim, masterAddr(t, ctx, cc, channel), replica)
	server(t, cl, victim).Kill()
	waitFor(t, 30*time.Second, "the replica to be promoted", func() bool {
		role, err := redis.NewClient(&redis.Options{Addr: replica}).Do(ctx, "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master"
	})
	note("replica %s promoted", replica)
	time.Sleep(2 * time.Second)
	server(t, cl, victim).Restart()
	note("old master %s back (as a replica)", victim)

	// 2. Reshard 200 slots, among them the histogram's, while orders flow.
	time.Sleep(2 * time.Second)
	cc.ReloadState(ctx)
	from := masterAddr(t, ctx, cc, "sales_histogram:time_of_day")
	to := masterAddr(t, ctx, cc, "sales_summary")
	if to == from {
		to = masterAddr(t, ctx, cc, channel)
	}
	if to == from {
		t.Fatalf("sales_summary, the stream and the histogram all on %s: pick other keys", from)
	}
	slots := slotsAround(t, ctx, cc, from, keySlot(t, ctx, cc, "sales_histogram:time_of_day"), 200)
	note("resharding %d slots (%d..%d) from %s to %s", len(slots), slots[0], slots[len(slots)-1], from, to)
	moved := moveSlots(t, ctx, cl, from, to, slots)
	note("resharded: %d keys moved", moved)

	// 3. Kill a host with SIGKILL and start it again.
	time.Sleep(time.Second)
	note("SIGKILL host 2")
	hosts[1].kill()
	hosts[1].removeSocketDirs()
	time.Sleep(2 * time.Second)
	hosts[1] = startHost(t, nil, cfg)
	started = append(started, hosts[1])
	note("host 2 started again")

	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	note("producer done (%d chunks stored again)", resent)
	waitApplied(t, cc, ids(all), bundled, 3*time.Minute)
	note("every order applied")
	for i, h := range hosts {
		if code := h.stop(t); code != 0 {
			t.Errorf("host %d exited %d after SIGTERM, want 0", i+1, code)
		}
	}
	if p, err := cc.XPending(ctx, channel, streamGroup).Result(); err != nil || p.Count != 0 {
		t.Errorf("stream group: %v pending (%v), want 0", p, err)
	}
	records := checkClusterState(t, ctx, cc, all, false)

	// The bound: entries outlive their pair's marker by recordKeep; what a
	// killed host could not delete, a sweep does.
	time.Sleep(apply.RecordKeep)
	deleted, left, err := apply.New(cc, "eventhost:deadletter").SweepRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("after %s and a sweep: %d record entries left, want 0", apply.RecordKeep, left)
	}
	t.Logf("records: %d entries when the hosts stopped (%d orders), %d swept %s later, %d left",
		records, n, deleted, apply.RecordKeep, left)
	t.Logf("timeline:\n%s", strings.Join(timeline, "\n"))
	// What the hosts went through (timing decides how much of it each
	// run meets, so it is reported, not asserted).
	pauses := map[string]int{}
	for _, h := range started {
		for _, m := range pausedLine.FindAllStringSubmatch(h.log.String(), -1) {
			pauses[m[1]]++
		}
	}
	t.Logf("hosts paused (pauses and retries by reason): %v", pauses)
	if pauses[noReplicas] == 0 {
		t.Errorf("no host met the master refusing writes: the fault did not hit")
	}
}

// noReplicas is pausedLine's reason for a master refusing writes for want
// of replicas.
const noReplicas = "redis has too few replicas (NOREPLICAS)"

// signalHosts sends sig to every host's process.
func signalHosts(t *testing.T, hosts []*host, sig syscall.Signal) {
	t.Helper()
	for _, h := range hosts {
		if err := h.cmd.Process.Signal(sig); err != nil {
			t.Fatalf("signal %v to host %d: %v", sig, h.cmd.Process.Pid, err)
		}
	}
}

// pausedLine is the pipeline's log line for a refused apply, with its reason.
var pausedLine = regexp.MustCompile(`redis refused the batch; paused, retrying: op=apply reason="([^"]+)"`)

// durableChunk stores os on the masters of their hashes, each node's share
// in one pipeline ending with WAIT 1, then appends their ids to the stream
// the same way.
func durableChunk(ctx context.Context, cc *redis.ClusterClient, os []publish.Order) error {
	byNode := map[*redis.Client][]publish.Order{}
	for _, o := range os {
		node, err := cc.MasterForKey(ctx, orderPrefix+o.ID)
		if err != nil {
			return err
		}
		byNode[node] = append(byNode[node], o)
	}
	for node, part := range byNode {
		pipe := node.Pipeline()
		for _, o := range part {
			pipe.HSet(ctx, orderPrefix+o.ID, o.Fields()...)
		}
		pipe.Do(ctx, "WAIT", 1, 200)
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("store on %s: %w", node.Options().Addr, err)
		}
	}
	node, err := cc.MasterForKey(ctx, channel)
	if err != nil {
		return err
	}
	pipe := node.Pipeline()
	for _, o := range os {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: channel, Values: []any{publish.StreamIDField, o.ID}})
	}
	pipe.Do(ctx, "WAIT", 1, 200)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("announce on %s: %w", node.Options().Addr, err)
	}
	return nil
}

func server(t *testing.T, cl *redistest.Cluster, addr string) *redistest.Server {
	t.Helper()
	for _, s := range cl.Nodes {
		if s.Addr == addr {
			return s
		}
	}
	t.Fatalf("no node at %s", addr)
	return nil
}

func nodeID(t *testing.T, ctx context.Context, addr string) string {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	id, err := c.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatalf("cluster myid of %s: %v", addr, err)
	}
	return id
}

// replicaOf returns the address of master's replica.
func replicaOf(t *testing.T, ctx context.Context, cl *redistest.Cluster, master string) string {
	t.Helper()
	id := nodeID(t, ctx, master)
	c := redis.NewClient(&redis.Options{Addr: master})
	defer c.Close()
	nodes, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && f[3] == id {
			addr, _, _ := strings.Cut(f[1], "@")
			return addr
		}
	}
	t.Fatalf("master %s has no replica:\n%s", master, nodes)
	return ""
}

func keySlot(t *testing.T, ctx context.Context, cc *redis.ClusterClient, key string) int {
	t.Helper()
	s, err := cc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return int(s)
}

// slotsAround returns up to n slots that master owns, from slot on.
func slotsAround(t *testing.T, ctx context.Context, cc *redis.ClusterClient, master string, slot, n int) []int {
	t.Helper()
	ranges, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, r := range ranges {
		if len(r.Nodes) == 0 || r.Nodes[0].Addr != master || slot > r.End {
			continue
		}
		for s := max(slot, r.Start); s <= r.End && len(out) < n; s++ {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s owns no slot from %d on", master, slot)
	}
	return out
}

// moveSlots migrates slots from one master to another the way redis-cli
// --cluster reshard does: IMPORTING/MIGRATING, MIGRATE of the keys a few
// at a time, then SETSLOT NODE on every master. It returns the keys moved.
// The first slot moves one key every 300 ms, so that the hosts' scripts
// meet it half moved (ASK, TRYAGAIN).
func moveSlots(t *testing.T, ctx context.Context, cl *redistest.Cluster, from, to string, slots []int) int {
	t.Helper()
	fromID, toID := nodeID(t, ctx, from), nodeID(t, ctx, to)
	src := redis.NewClient(&redis.Options{Addr: from})
	defer src.Close()
	dst := redis.NewClient(&redis.Options{Addr: to})
	defer dst.Close()
	host, port, _ := net.SplitHostPort(to)
	moved := 0
	must := func(err error, what string) {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	for i, s := range slots {
		batch, pause := 5, 2*time.Millisecond
		if i == 0 {
			batch, pause = 1, 300*time.Millisecond
		}
		must(dst.Do(ctx, "CLUSTER", "SETSLOT", s, "IMPORTING", fromID).Err(), "setslot importing")
		must(src.Do(ctx, "CLUSTER", "SETSLOT", s, "MIGRATING", toID).Err(), "setslot migrating")
		for {
			keys, err := src.ClusterGetKeysInSlot(ctx, s, batch).Result()
			must(err, "getkeysinslot")
			if len(keys) == 0 {
				break
			}
			args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
			for _, k := range keys {
				args = append(args, k)
			}
			must(src.Do(ctx, args...).Err(), "migrate")
			moved += len(keys)
			time.Sleep(pause) // keys of one slot on both nodes for a while
		}
		must(dst.Do(ctx, "CLUSTER", "SETSLOT", s, "NODE", toID).Err(), "setslot node on the target")
		must(src.Do(ctx, "CLUSTER", "SETSLOT", s, "NODE", toID).Err(), "setslot node on the source")
		for _, nd := range cl.Nodes {
			if nd.Addr == from || nd.Addr == to {
				continue
			}
			c := redis.NewClient(&redis.Options{Addr: nd.Addr})
			_ = c.Do(ctx, "CLUSTER", "SETSLOT", s, "NODE", toID).Err() // replicas refuse it; they learn by gossip
			_ = c.Close()
		}
	}
	return moved
}
