package redistest

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestStartTLS: a StartTLS server answers its own TLS client, and refuses
// plain TCP and TLS clients without a certificate its CA signed.
func TestStartTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: runs in make test")
	}
	s, certs := StartTLS(t)
	ctx := context.Background()
	if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET over TLS: %v", err)
	}
	noCert := certs.ClientConfig(t)
	noCert.Certificates = nil
	otherCA := NewCerts(t).ClientConfig(t)
	otherCA.Certificates = certs.ClientConfig(t).Certificates
	for name, tc := range map[string]*tls.Config{"plain TCP": nil, "no client certificate": noCert, "another CA": otherCA} {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, TLSConfig: tc, MaxRetries: -1,
			DialTimeout: time.Second, ReadTimeout: time.Second})
		if err := c.Ping(ctx).Err(); err == nil {
			t.Errorf("%s: PING answered, want refused", name)
		}
		_ = c.Close()
	}
}
