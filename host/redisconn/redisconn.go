// Package redisconn builds the Redis client from the config.
package redisconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/config"
)

// New returns a client for c's topology: a single node, the master that
// Sentinel names (following its failovers), or a Redis Cluster (following
// MOVED and ASK). It does no I/O: the first command connects.
func New(c config.Redis) (redis.UniversalClient, error) {
	var tc *tls.Config
	if c.TLS != nil {
		var err error
		if tc, err = tlsConfig(c.TLS); err != nil {
			return nil, err
		}
	}
	// The apply step sends a whole batch in one script call; keep the read
	// timeout well above a big batch's run time. Retries are the
	// pipeline's job, with backoff and logging (MaxRetries -1).
	readTimeout := 10 * c.DialTimeout
	switch {
	case c.Sentinel != nil:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       c.Sentinel.MasterName,
			SentinelAddrs:    c.Sentinel.Addresses,
			SentinelUsername: c.Sentinel.Username,
			SentinelPassword: c.Sentinel.Password,
			Username:         c.Username,
			Password:         c.Password,
			DB:               c.DB,
			DialTimeout:      c.DialTimeout,
			ReadTimeout:      readTimeout,
			MaxRetries:       -1,
			TLSConfig:        tc,
		}), nil
	case c.Cluster != nil:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:       c.Cluster.Addresses,
			Username:    c.Username,
			Password:    c.Password,
			DialTimeout: c.DialTimeout,
			ReadTimeout: readTimeout,
			// Redirects (MOVED, ASK) are the cluster's routing, not a
			// failure: the client follows them. A node that is down is
			// the pipeline's to retry.
			MaxRedirects: 8,
			MaxRetries:   -1,
			TLSConfig:    tc,
		}), nil
	}
	return redis.NewClient(&redis.Options{
		Addr:        c.Address,
		Username:    c.Username,
		Password:    c.Password,
		DB:          c.DB,
		DialTimeout: c.DialTimeout,
		ReadTimeout: readTimeout,
		MaxRetries:  -1,
		TLSConfig:   tc,
	}), nil
}

func tlsConfig(t *config.TLS) (*tls.Config, error) {
	tc := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls: read ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis tls: ca_file %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls: load cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// TLSError reports whether err is a TLS handshake that failed for good: a
// server certificate that does not verify against ca_file (or server_name),
// the server refusing our client certificate, or a server that does not
// speak TLS. Unlike a Redis that is down, waiting will not fix it.
func TLSError(err error) bool {
	var verify *tls.CertificateVerificationError
	var header tls.RecordHeaderError
	var unknownCA x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	if errors.As(err, &verify) || errors.As(err, &header) || errors.As(err, &unknownCA) ||
		errors.As(err, &host) || errors.As(err, &invalid) {
		return true
	}
	// An alert from the server (bad or missing client certificate) is an
	// unexported type inside a *net.OpError.
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error" && op.Err != nil && strings.HasPrefix(op.Err.Error(), "tls: ")
}
