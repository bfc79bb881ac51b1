// Package ui serves the live dashboard: a read-only page built from the
// views the running plugins declare, kept current over one server-sent
// events stream. Redis is read by one loop, at most once per refresh
// interval and only while someone watches, however many pages are open.
package ui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/eventhost/eventhost/host/report"
)

//go:embed assets
var assets embed.FS

// MaxViewers bounds the open event streams; one more is refused (503).
const MaxViewers = 64

// Health is the host's state as the dashboard shows it.
type Health struct {
	// Ready is /readyz's verdict: subscribed, plugins registered, not
	// paused, every plugin up.
	Ready bool `json:"ready"`
	// Paused is why intake is paused (Redis out of memory, read-only, …),
	// empty when it is not; PausedSince when it began.
	Paused      string    `json:"paused,omitempty"`
	PausedSince time.Time `json:"paused_since,omitzero"`
	Plugins     []Plugin  `json:"plugins"`
	// DeadLetters is the length of the dead-letter stream: orders waiting
	// for a person (eventhost deadletter list). -1 when it could not be read.
	DeadLetters int64 `json:"dead_letters"`
}

// Plugin is one running plugin: whether its process is up, and what it
// shows.
type Plugin struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
}

// Host is what the dashboard asks the running host on every refresh, so a
// plugin a reload added shows up at the next one.
type Host interface {
	// Views returns the running plugins' views, in config order.
	Views() []report.Plugin
	// Health returns the host's state; the server fills in DeadLetters.
	Health() Health
}

// Update is one message of the event stream.
type Update struct {
	Time   time.Time        `json:"time"`
	Health Health           `json:"health"`
	Views  *report.Snapshot `json:"views,omitempty"`
	// Error says why (some of) the views could not be read.
	Error string `json:"error,omitempty"`
}

// Server is the dashboard. Its fields may be set before Serve.
type Server struct {
	rdb  redis.UniversalClient
	host Host
	// deadLetters is the dead-letter stream's key.
	deadLetters string

	// Refresh is how often Redis is read while anyone watches.
	Refresh time.Duration
	Logger  hclog.Logger

	mu      sync.Mutex
	viewers map[chan []byte]struct{}
	last    []byte
	// watched wakes the read loop when the first viewer arrives.
	watched chan struct{}
}

// New returns a dashboard reading rdb and asking host. It does no I/O.
func New(rdb redis.UniversalClient, host Host, deadLetterStream string) *Server {
	return &Server{
		rdb: rdb, host: host, deadLetters: deadLetterStream,
		Refresh: time.Second, Logger: hclog.NewNullLogger(),
		viewers: map[chan []byte]struct{}{}, watched: make(chan struct{}, 1),
	}
}

// Handler serves the page, its assets and the event stream. Anything but
// GET and HEAD is refused: the dashboard changes nothing.
func (s *Server) Handler() http.Handler {
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /events", s.events)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the dashboard is read-only", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		mux.ServeHTTP(w, r)
	})
}

// Serve serves the dashboard on ln and reads Redis for it until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go s.readLoop(ctx)
	stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve dashboard on %s: %w", ln.Addr(), err)
	}
	return nil
}

// readLoop reads every view once per Refresh while anyone watches, and
// sends the result to every viewer: the number of open pages does not
// change the load on Redis.
func (s *Server) readLoop(ctx context.Context) {
	tick := time.NewTicker(s.Refresh)
	defer tick.Stop()
	for {
		if s.viewerCount() == 0 {
			select {
			case <-s.watched:
			case <-ctx.Done():
				return
			}
		}
		s.broadcast(s.read(ctx))
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// read takes one Update.
func (s *Server) read(ctx context.Context) []byte {
	u := Update{Time: time.Now().UTC(), Health: s.host.Health()}
	var err error
	u.Views, err = report.Read(ctx, s.rdb, s.host.Views())
	if err != nil {
		u.Error = err.Error()
	}
	if u.Health.DeadLetters, err = s.rdb.XLen(ctx, s.deadLetters).Result(); err != nil {
		u.Health.DeadLetters = -1
	}
	b, err := json.Marshal(u)
	if err != nil { // cannot happen: every field marshals
		s.Logger.Error("dashboard: encode update", "error", err)
		return nil
	}
	return b
}

func (s *Server) viewerCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.viewers)
}

// broadcast hands msg to every viewer. A viewer still busy with the
// previous message gets this one instead: a slow phone skips updates, it
// does not hold up the others.
func (s *Server) broadcast(msg []byte) {
	if msg == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = msg
	for ch := range s.viewers {
		select {
		case <-ch:
		default:
		}
		ch <- msg
	}
}

// subscribe adds a viewer, primed with the last update; ok is false when
// MaxViewers are watching.
func (s *Server) subscribe() (ch chan []byte, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.viewers) >= MaxViewers {
		return nil, false
	}
	ch = make(chan []byte, 1)
	if s.last != nil {
		ch <- s.last
	}
	s.viewers[ch] = struct{}{}
	select {
	case s.watched <- struct{}{}:
	default:
	}
	return ch, true
}

func (s *Server) unsubscribe(ch chan []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.viewers, ch)
}

// events is the server-sent events stream: one "data:" line of JSON (an
// Update) per refresh.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch, ok := s.subscribe()
	if !ok {
		http.Error(w, fmt.Sprintf("too many viewers (%d)", MaxViewers), http.StatusServiceUnavailable)
		return
	}
	defer s.unsubscribe(ch)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	for {
		select {
		case msg := <-ch:
			if _, err := fmt.Fprintf(w, "data: %s\n\n", msg); err != nil {
				return
			}
			flusher.Flush()
		case <-r.Context().Done():
			return
		}
	}
}
