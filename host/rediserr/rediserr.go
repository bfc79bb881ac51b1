// Package rediserr says what a failed Redis call means for the caller: one
// classifier for every package that talks to Redis, beside the client.
package rediserr

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Class is what a failed Redis call means for the caller. Every package that
// talks to Redis decides through Classify, so that one reply is handled the
// same way everywhere.
type Class int

// The classes of Redis failures.
const (
	// Fine is no error at all.
	Fine Class = iota
	// Stopped is the caller's context ending: stop, do not retry.
	Stopped
	// Paused is Redis unable or unwilling to serve for now: the connection
	// is gone, it is loading or failing over, out of memory, not
	// persisting, read-only, or refusing our user. The caller holds what it
	// has, reports itself paused with the reason, and retries with backoff;
	// the cause is fixed outside the host (or passes by itself).
	Paused
	// KeyFault is a reply about one key (WRONGTYPE): the order or write
	// behind that key fails alone, and the round trip is fine.
	KeyFault
)

// replyReasons names the replies of class Paused, by prefix, for the log,
// /readyz and the eventhost_paused metric. Unknown replies are Paused too,
// with reason "error reply": never a crash and never a lost order.
var replyReasons = []struct{ prefix, reason string }{
	{"OOM", "redis out of memory (OOM)"},
	{"NOPERM", "redis user lacks permission (NOPERM)"},
	{"NOAUTH", "redis wants authentication (NOAUTH)"},
	{"WRONGPASS", "redis refused the credentials (WRONGPASS)"},
	{"MISCONF", "redis cannot persist (MISCONF)"},
	{"READONLY", "redis is a read-only replica (READONLY)"},
	{"LOADING", "redis is loading its data set (LOADING)"},
	{"BUSY", "redis is running a long script (BUSY)"},
	{"MASTERDOWN", "redis lost its master (MASTERDOWN)"},
	{"NOREPLICAS", "redis has too few replicas (NOREPLICAS)"},
	{"TRYAGAIN", "redis is moving slots (TRYAGAIN)"},
	{"CLUSTERDOWN", "redis cluster is down (CLUSTERDOWN)"},
	{"MOVED", "redis cluster moved a slot (MOVED)"},
	{"ASK", "redis cluster is moving a slot (ASK)"},
	{"EXECABORT", "redis aborted a transaction (EXECABORT)"},
}

// PauseReasoner is an error of eventhost's own that pauses the pipeline
// with a reason of its own (from a bounded set, fit for a metric label),
// rather than one read from a Redis reply.
type PauseReasoner interface {
	error
	PauseReason() string
}

// Classify says what err means and, for Paused, why in a few words (a
// bounded set of reasons, fit for a metric label).
func Classify(err error) (Class, string) {
	switch {
	case err == nil:
		return Fine, ""
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return Stopped, ""
	}
	var own PauseReasoner
	if errors.As(err, &own) {
		return Paused, own.PauseReason()
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) || errors.Is(err, redis.ErrClosed) {
		return Paused, "redis connection failed"
	}
	msg := rerr.Error()
	if strings.HasPrefix(msg, "WRONGTYPE") {
		return KeyFault, ""
	}
	// A script's error reply carries the command's reply after "ERR ... :"
	// in some versions; look for the code anywhere at a word start.
	for _, r := range replyReasons {
		if strings.HasPrefix(msg, r.prefix) || strings.Contains(msg, " "+r.prefix+" ") {
			return Paused, r.reason
		}
	}
	return Paused, "redis error reply"
}

// AuthError reports whether err is Redis refusing our credentials: at
// start-up that is a config problem, reported and fatal.
func AuthError(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH") || strings.HasPrefix(msg, "NOPERM") ||
		strings.Contains(msg, "invalid password") || strings.Contains(msg, "invalid username-password")
}
