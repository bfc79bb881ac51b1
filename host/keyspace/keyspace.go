// Package keyspace names what eventhost itself keeps in Redis: the marker
// fields in an order's hash, the plugin registry, the count and ring of
// applies, and a cluster's idempotency records. It holds names, and the
// format of the one marker whose value means something (DoneList), so that
// one file says what lives under MarkerPrefix and no two packages can pick
// the same name for different things.
//
// The rule: every key or field name eventhost writes lives here, and other
// packages build names only from these. Names that configuration chooses
// are not here: the order hashes' prefix, the source stream and the
// dead-letter stream (config.DefaultDeadLetterStream is its default). The
// Lua scripts cannot import Go: mark.lua and catchup's scan.lua spell the
// marker prefixes out, apply.lua, intent.lua and scan.lua DoneListField,
// and touch.lua's field "eventhost:wait" exists only within one run of that
// script.
//
// The strings are Redis state: a stored order's markers and a running
// host's registry outlive any one build, so a name here never changes.
package keyspace

import (
	"iter"
	"strconv"
	"strings"
)

// MarkerPrefix starts every field eventhost itself keeps in an order's hash.
// Such fields are stripped before an order reaches a plugin.
const MarkerPrefix = "eventhost:"

// DonePrefix + plugin name is the field that records that the plugin's
// effects for the order have been applied.
const DonePrefix = MarkerPrefix + "done:"

// DoneField is the marker field for plugin.
func DoneField(plugin string) string { return DonePrefix + plugin }

// DoneListField is the one field that records that the plugins one script
// applied for an order (one or more) are done: its value is the apply time
// in unix milliseconds, then the plugins' names, each after one space
// ("1764460800123 sales-histogram events-summary"). One field costs Redis
// less to write than a field each, and keeps the order hash smaller. A
// plugin is done for an order when its DoneField is set or the list names
// it: a list is written once, and a plugin done later gets its own
// DoneField. A name with a space is never in a list (DoneList).
const DoneListField = MarkerPrefix + "done"

// DoneListMax is the longest list DoneList makes: Redis keeps a small hash
// compact (a listpack) only while every value is at most
// hash-max-listpack-value bytes, 64 by default.
const DoneListMax = 64

// DoneList returns the DoneListField value for plugins applied at ms (unix
// milliseconds), or false when they must have a DoneField each: a name
// holds a space, or the list would be longer than DoneListMax.
func DoneList(ms int64, plugins []string) (string, bool) {
	if len(plugins) == 0 {
		return "", false
	}
	b := strconv.AppendInt(make([]byte, 0, DoneListMax), ms, 10)
	for _, p := range plugins {
		if p == "" || strings.Contains(p, " ") || len(b)+1+len(p) > DoneListMax {
			return "", false
		}
		b = append(append(b, ' '), p...)
	}
	return string(b), true
}

// DoneListHolds reports whether list, a DoneListField value, names plugin.
func DoneListHolds(list, plugin string) bool {
	for name := range DoneListPlugins(list) {
		if name == plugin {
			return true
		}
	}
	return false
}

// DoneListTime returns the apply time a DoneListField value holds, in unix
// milliseconds, or false when its first word is not a number.
func DoneListTime(list string) (int64, bool) {
	ms, _, _ := strings.Cut(list, " ")
	n, err := strconv.ParseInt(ms, 10, 64)
	return n, err == nil
}

// DoneListPlugins yields the plugins list, a DoneListField value, names.
func DoneListPlugins(list string) iter.Seq[string] {
	return func(yield func(string) bool) {
		_, names, ok := strings.Cut(list, " ") // after the time
		for ok {
			var name string
			name, names, ok = strings.Cut(names, " ")
			if !yield(name) {
				return
			}
		}
	}
}

// DoneListNeedle returns what a script looks for in a DoneListField value,
// with a space appended, to tell whether the list names plugin: " plugin ",
// or "" for a plugin no list names (DoneList refuses its name; searched for,
// " x y " would be found in a list naming x and y). The scripts cannot
// import Go: the host passes them this.
func DoneListNeedle(plugin string) string {
	if plugin == "" || strings.Contains(plugin, " ") {
		return ""
	}
	return " " + plugin + " "
}

// Done reports whether an order hash's fields mark plugin done: its
// DoneField, or a DoneListField that names it.
func Done(fields map[string]string, plugin string) bool {
	if _, ok := fields[DoneField(plugin)]; ok {
		return true
	}
	list, ok := fields[DoneListField]
	return ok && DoneListHolds(list, plugin)
}

// DeadPrefix + plugin name marks an order dead-lettered for that plugin;
// DeadField (no plugin) marks an order that is itself bad. Catch-up passes
// over dead-lettered pairs: they wait for a replay.
const DeadPrefix = MarkerPrefix + "dead:"

// DeadOrderField marks an order hash that no plugin could be given.
const DeadOrderField = MarkerPrefix + "dead"

// DeadField is the dead-letter marker field for plugin ("" for the order).
func DeadField(plugin string) string {
	if plugin == "" {
		return DeadOrderField
	}
	return DeadPrefix + plugin
}

// HistoryPrefix + plugin name marks an order that was already stored when
// the plugin was first enabled: catch-up leaves it alone, backfill does not.
const HistoryPrefix = MarkerPrefix + "history:"

// HistoryField is the history marker field for plugin.
func HistoryField(plugin string) string { return HistoryPrefix + plugin }

// IntentPrefix + plugin name is the field, in an order's hash on a Redis
// Cluster, that holds a digest of the plugin's first answer for the order
// while its effects are written slot by slot (intent.lua), so that a redo
// or another host whose plugin answers differently is told before it
// writes, instead of landing a second answer in other hash slots. mark.lua
// deletes it when it sets the pair's done or dead marker.
const IntentPrefix = MarkerPrefix + "intent:"

// IntentField is the intent field for plugin.
func IntentField(plugin string) string { return IntentPrefix + plugin }

// RegistryKey is the hash that records, per plugin, its registration
// token: the time in unix milliseconds when it was first enabled, and the
// value of its history markers. While the history is being marked the
// value is "marking:" + token.
const RegistryKey = MarkerPrefix + "plugins"

// RetiredKeys are the keys hosts built before commit 761fb71 (2026-11-30) kept on one Redis
// (not a cluster) to number their apply runs: the hash eventhost:applies
// and the 64 sets eventhost:applies:0 … :63, each holding the orders one
// run marked. No host reads them any more (an order's list of done plugins
// does their job, see apply.lua); a host deletes them when it starts.
func RetiredKeys() []string {
	keys := []string{MarkerPrefix + "applies"}
	for n := range 64 {
		keys = append(keys, MarkerPrefix+"applies:"+strconv.Itoa(n))
	}
	return keys
}

// RecordPrefix starts the name of every slot's idempotency record on a
// Redis Cluster (apply's recordKey adds the slot's hash tag).
const RecordPrefix = MarkerPrefix + "applied:"

// EmptyKey is a key eventhost never writes (plugins may not: it is under
// MarkerPrefix). The apply script checks the types of a batch's set and
// sorted-set keys with one SINTERCARD/ZINTERCARD that includes it: Redis
// checks every key's type first, and an empty key then ends the command at
// once. Should it exist after all, the check is slower, never wrong. It is
// named here so that no name eventhost does write takes it.
const EmptyKey = MarkerPrefix + "empty"
