package catchup

import (
	"slices"
	"strings"
)

// Routes tells the channel of an order found by a scan, as far as the
// config can: a hash does not record where its id was published. Without
// that, a plugin restricted to some of the source's channels could be
// handed an order published on another one.
type Routes struct {
	source []string
	// prefixes are (id prefix, channel) pairs: an order whose id starts
	// with the prefix is published on that channel only.
	prefixes [][2]string
}

// NewRoutes returns the routes of a source subscribed to channels, where
// idPrefixes maps a channel to the id prefix of the orders published on it
// (the config's source { id_prefixes }); it may be nil.
func NewRoutes(channels []string, idPrefixes map[string]string) Routes {
	r := Routes{source: channels}
	for ch, p := range idPrefixes {
		r.prefixes = append(r.prefixes, [2]string{p, ch})
	}
	// Longest first, so the most specific prefix wins (the config refuses
	// prefixes of one another, so this only makes the order stable).
	slices.SortFunc(r.prefixes, func(a, b [2]string) int { return len(b[0]) - len(a[0]) })
	return r
}

// ChannelOf returns the channel order id was published on, or "" when it
// cannot be told: the source has several channels and no id prefix of
// the config matches.
func (r Routes) ChannelOf(id string) string {
	if len(r.source) == 1 {
		return r.source[0]
	}
	for _, p := range r.prefixes {
		if strings.HasPrefix(id, p[0]) {
			return p[1]
		}
	}
	return ""
}

// May reports whether a plugin listening on channels may be given an
// order published on channel, "" meaning unknown: then only a plugin that
// listens on every channel of the source may, since the order arrived on
// one of them.
func (r Routes) May(channels []string, channel string) bool {
	if channel != "" {
		return slices.Contains(channels, channel)
	}
	for _, c := range r.source {
		if !slices.Contains(channels, c) {
			return false
		}
	}
	return true
}

// Scannable reports whether a scan can ever find an order for a plugin
// listening on channels: it listens on every channel of the source, or on
// one whose orders the config tells by their id prefix.
func (r Routes) Scannable(channels []string) bool {
	if r.May(channels, "") {
		return true
	}
	for _, p := range r.prefixes {
		if slices.Contains(channels, p[1]) {
			return true
		}
	}
	return false
}
