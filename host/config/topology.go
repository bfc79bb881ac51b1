package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// buildTopology reads the redis block's sentinel or cluster block into r
// and checks that the block names exactly one topology.
func buildTopology(diags *hcl.Diagnostics, r *Redis, raw *redisSchema) {
	if raw.Sentinel != nil && raw.Cluster != nil {
		*diags = append(*diags, errorAt(&raw.Cluster.Range, "Two Redis topologies",
			"A redis block holds a sentinel block or a cluster block, not both: Sentinel finds one master, a cluster has many."))
		return
	}
	if (raw.Sentinel != nil || raw.Cluster != nil) && raw.Address != nil {
		*diags = append(*diags, errorAt(attrRange(raw.Body, "address"), "address beside a topology block",
			"With a sentinel or cluster block the nodes come from its addresses; remove address."))
	}
	if s := raw.Sentinel; s != nil {
		r.Sentinel = &Sentinel{
			MasterName: deref(s.MasterName, ""),
			Addresses:  s.Addresses,
			Username:   deref(s.Username, ""),
			Password:   deref(s.Password, ""),
		}
		r.Address = ""
		if r.Sentinel.MasterName == "" {
			*diags = append(*diags, errorAt(attrRange(s.Body, "master_name"), "Missing master_name",
				"A sentinel block needs master_name: the name the sentinels monitor the master under (sentinel monitor <name> …)."))
		}
		checkAddresses(diags, "sentinel", s.Addresses, attrRange(s.Body, "addresses"))
	}
	if c := raw.Cluster; c != nil {
		r.Cluster = &Cluster{Addresses: c.Addresses, WaitReplicas: deref(c.WaitReplicas, DefaultClusterWaitReplicas),
			WaitTimeout: duration(diags, c.Body, "wait_timeout", c.WaitTimeout, DefaultClusterWaitTimeout)}
		if r.Cluster.WaitReplicas < 0 {
			*diags = append(*diags, errorAt(attrRange(c.Body, "wait_replicas"), "Invalid wait_replicas",
				fmt.Sprintf("wait_replicas = %d: say how many replicas each master's writes must reach, 0 for none.", r.Cluster.WaitReplicas)))
		}
		r.Address = ""
		checkAddresses(diags, "cluster", c.Addresses, attrRange(c.Body, "addresses"))
		if r.DB != 0 {
			*diags = append(*diags, errorAt(attrRange(raw.Body, "db"), "db on a cluster",
				fmt.Sprintf("db = %d: a Redis Cluster has database 0 only; remove db.", r.DB)))
		}
	}
}

// checkAddresses checks a topology block's addresses: at least one, each
// host:port, none twice.
func checkAddresses(diags *hcl.Diagnostics, block string, addrs []string, r *hcl.Range) {
	if len(addrs) == 0 {
		*diags = append(*diags, errorAt(r, "Missing addresses",
			fmt.Sprintf("A %s block needs addresses = [\"host:port\", …]: at least one %s to ask first.", block, map[string]string{"sentinel": "sentinel", "cluster": "node of the cluster"}[block])))
		return
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		n, perr := strconv.Atoi(port)
		switch {
		case err != nil || host == "" || perr != nil || n < 1 || n > 65535:
			*diags = append(*diags, errorAt(r, "Invalid address",
				fmt.Sprintf("%s address %q is not host:port (for example \"10.0.0.1:%s\").", block, a, map[string]string{"sentinel": "26379", "cluster": "6379"}[block])))
		case seen[a]:
			*diags = append(*diags, errorAt(r, "Duplicate address", fmt.Sprintf("%s address %q is listed twice.", block, a)))
		}
		seen[a] = true
	}
}

// Where names the Redis the host talks to, for status lines: the address,
// the sentinels' master or the cluster's seeds.
func (r Redis) Where() string {
	switch {
	case r.Sentinel != nil:
		return fmt.Sprintf("master %q of sentinels %s", r.Sentinel.MasterName, strings.Join(r.Sentinel.Addresses, ","))
	case r.Cluster != nil:
		return "cluster " + strings.Join(r.Cluster.Addresses, ",")
	}
	return r.Address
}
