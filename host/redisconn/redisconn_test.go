package redisconn_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/eventhost/eventhost/host/redisconn"
)

// alert stands in for crypto/tls' unexported alert type, which reaches us
// inside a *net.OpError with Op "remote error".
type alert string

func (a alert) Error() string { return string(a) }

func TestTLSError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"unknown CA", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, true},
		{"wrapped unknown CA", fmt.Errorf("dial: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), true},
		{"bare hostname error", x509.HostnameError{Host: "redis"}, true},
		{"not TLS", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, true},
		{"client certificate refused", &net.OpError{Op: "remote error", Err: alert("tls: certificate required")}, true},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, false},
		{"EOF", io.EOF, false},
		{"other remote error", &net.OpError{Op: "remote error", Err: errors.New("boom")}, false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redisconn.TLSError(tt.err); got != tt.want {
				t.Errorf("TLSError(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
