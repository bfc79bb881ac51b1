package redisconn_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/redisconn"
)

// New picks the go-redis client for the topology, and does no I/O: the
// addresses here answer nothing.
func TestNewPicksTheTopology(t *testing.T) {
	tests := []struct {
		name    string
		c       config.Redis
		want    string
		cluster bool
	}{
		{"single node", config.Redis{Address: "127.0.0.1:1"}, "*redis.Client", false},
		{"sentinel", config.Redis{Sentinel: &config.Sentinel{MasterName: "m", Addresses: []string{"127.0.0.1:1"}}}, "*redis.Client", false},
		{"cluster", config.Redis{Cluster: &config.Cluster{Addresses: []string{"127.0.0.1:1"}}}, "*redis.ClusterClient", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.DialTimeout = time.Second
			rdb, err := redisconn.New(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			if got := fmt.Sprintf("%T", rdb); got != tt.want {
				t.Errorf("New = %s, want %s", got, tt.want)
			}
			if got := redisconn.Cluster(rdb); got != tt.cluster {
				t.Errorf("Cluster = %v, want %v", got, tt.cluster)
			}
		})
	}
}
