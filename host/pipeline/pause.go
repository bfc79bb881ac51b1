package pipeline

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eventhost/eventhost/host/metrics"
)

// pauseState is whether the pipeline waits for Redis, and why: readiness,
// the log and the eventhost_paused gauge all show it.
type pauseState struct {
	mu     sync.Mutex
	reason string // "" while running
	detail string // the last error, for /readyz
	since  time.Time
}

func (s *pauseState) pause(logger hclog.Logger, m *metrics.Metrics, reason string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	detail := err.Error()
	if len(detail) > 300 {
		detail = detail[:300] + "…"
	}
	s.detail = detail
	if s.reason == reason {
		return
	}
	if s.reason != "" {
		m.Paused.WithLabelValues(s.reason).Set(0)
	} else {
		s.since = time.Now()
	}
	s.reason = reason
	m.Paused.WithLabelValues(reason).Set(1)
	m.Pauses.WithLabelValues(reason).Inc()
	logger.Warn("paused: Redis does not take writes; holding the orders received and retrying", "reason", reason, "error", detail)
}

func (s *pauseState) resume(logger hclog.Logger, m *metrics.Metrics) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reason == "" {
		return
	}
	m.Paused.WithLabelValues(s.reason).Set(0)
	logger.Info("resumed: Redis takes writes again", "was", s.reason, "paused_for", time.Since(s.since).Round(time.Millisecond))
	s.reason, s.detail = "", ""
}

// get returns the reason with the last error, and when the pause began.
func (s *pauseState) get() (string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reason == "" {
		return "", time.Time{}
	}
	return s.reason + ": " + s.detail, s.since
}
