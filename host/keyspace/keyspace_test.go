package keyspace_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/eventhost/eventhost/host/keyspace"
)

// The wanted names are spelled out, not built from the constants: they are
// what stored orders and running hosts already hold, so a change to any of
// them is a change to Redis state, not a refactor.

func TestNames(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"MarkerPrefix", keyspace.MarkerPrefix, "eventhost:"},
		{"DonePrefix", keyspace.DonePrefix, "eventhost:done:"},
		{"DoneListField", keyspace.DoneListField, "eventhost:done"},
		{"DeadPrefix", keyspace.DeadPrefix, "eventhost:dead:"},
		{"DeadOrderField", keyspace.DeadOrderField, "eventhost:dead"},
		{"HistoryPrefix", keyspace.HistoryPrefix, "eventhost:history:"},
		{"IntentPrefix", keyspace.IntentPrefix, "eventhost:intent:"},
		{"RegistryKey", keyspace.RegistryKey, "eventhost:plugins"},
		{"RecordPrefix", keyspace.RecordPrefix, "eventhost:applied:"},
		{"EmptyKey", keyspace.EmptyKey, "eventhost:empty"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestFields(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"DoneField", keyspace.DoneField("sales-histogram"), "eventhost:done:sales-histogram"},
		{"DeadField plugin", keyspace.DeadField("sales-histogram"), "eventhost:dead:sales-histogram"},
		// An order that is itself bad is dead for every plugin: one field
		// without a plugin name.
		{"DeadField order", keyspace.DeadField(""), "eventhost:dead"},
		{"HistoryField", keyspace.HistoryField("sales-histogram"), "eventhost:history:sales-histogram"},
		{"IntentField", keyspace.IntentField("sales-histogram"), "eventhost:intent:sales-histogram"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

// TestRetiredKeys: the names older hosts gave the count of their apply runs
// and its ring, which a host deletes when it starts.
func TestRetiredKeys(t *testing.T) {
	got := keyspace.RetiredKeys()
	if len(got) != 65 || got[0] != "eventhost:applies" || got[1] != "eventhost:applies:0" || got[64] != "eventhost:applies:63" {
		t.Fatalf("RetiredKeys() = %d keys %q … %q, want eventhost:applies and eventhost:applies:0 … :63", len(got), got[:min(2, len(got))], got[len(got)-1])
	}
}

func TestDoneList(t *testing.T) {
	const ms = 1764460800123
	long := strings.Repeat("x", keyspace.DoneListMax-len("1764460800123 "))
	tests := []struct {
		name    string
		plugins []string
		want    string // "" for no list
	}{
		{"the tutorial's plugins", []string{"sales-histogram", "events-summary", "customer-invoices"},
			"1764460800123 sales-histogram events-summary customer-invoices"},
		{"one", []string{"p"}, "1764460800123 p"},
		{"exactly DoneListMax bytes", []string{long}, "1764460800123 " + long},
		{"one byte more", []string{long + "x"}, ""},
		{"a name with a space", []string{"a", "b c"}, ""},
		{"an empty name", []string{"a", ""}, ""},
		{"no plugin", nil, ""},
	}
	for _, tt := range tests {
		got, ok := keyspace.DoneList(ms, tt.plugins)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("%s: DoneList = %q, %v; want %q", tt.name, got, ok, tt.want)
		}
	}
}

func TestDoneListHolds(t *testing.T) {
	list := "1764460800123 sales-histogram events-summary"
	for _, tt := range []struct {
		plugin string
		want   bool
	}{
		{"sales-histogram", true},
		{"events-summary", true},
		{"sales", false},           // a name is whole
		{"events-summary ", false}, // never a space
		{"1764460800123", false},   // the time is no name
		{"", false},
	} {
		if got := keyspace.DoneListHolds(list, tt.plugin); got != tt.want {
			t.Errorf("DoneListHolds(%q, %q) = %v, want %v", list, tt.plugin, got, tt.want)
		}
	}
	if got := slices.Collect(keyspace.DoneListPlugins(list)); !reflect.DeepEqual(got, []string{"sales-histogram", "events-summary"}) {
		t.Errorf("DoneListPlugins = %q", got)
	}
	if ms, ok := keyspace.DoneListTime(list); ms != 1764460800123 || !ok {
		t.Errorf("DoneListTime = %d, %v", ms, ok)
	}
	if _, ok := keyspace.DoneListTime("a b"); ok {
		t.Errorf("DoneListTime of a list without a time: ok")
	}
	if got := slices.Collect(keyspace.DoneListPlugins("1764460800123")); len(got) != 0 {
		t.Errorf("DoneListPlugins of a time alone = %q, want none", got)
	}
	// What the scripts look for agrees with DoneListHolds.
	for _, p := range []string{"sales-histogram", "events-summary", "sales", "events-summary ", "1764460800123", "", "sales-histogram events-summary"} {
		needle := keyspace.DoneListNeedle(p)
		if got := needle != "" && strings.Contains(list+" ", needle); got != keyspace.DoneListHolds(list, p) {
			t.Errorf("DoneListNeedle(%q) = %q finds it in %q: %v, DoneListHolds says %v", p, needle, list, got, !got)
		}
	}
	fields := map[string]string{keyspace.DoneListField: list, keyspace.DoneField("customer-invoices"): "1764460800123456"}
	for p, want := range map[string]bool{"sales-histogram": true, "customer-invoices": true, "other": false} {
		if got := keyspace.Done(fields, p); got != want {
			t.Errorf("Done(%v, %q) = %v, want %v", fields, p, got, want)
		}
	}
}
