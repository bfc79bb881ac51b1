package deadletter

import "testing"

func TestFilterMatch(t *testing.T) {
	forPlugin := Entry{OrderID: "7", Plugin: "liar"}
	badOrder := Entry{OrderID: "8"}
	tests := []struct {
		name   string
		filter Filter
		entry  Entry
		want   bool
	}{
		{"zero filter, plugin entry", Filter{}, forPlugin, true},
		{"zero filter, bad order", Filter{}, badOrder, true},
		{"plugin matches", Filter{Plugin: "liar"}, forPlugin, true},
		{"plugin differs", Filter{Plugin: "events-summary"}, forPlugin, false},
		{"plugin filter skips bad orders", Filter{Plugin: "liar"}, badOrder, false},
		{"- selects bad orders", Filter{Plugin: NoPlugin}, badOrder, true},
		{"- skips plugin entries", Filter{Plugin: NoPlugin}, forPlugin, false},
		{"id matches", Filter{ID: "7"}, forPlugin, true},
		{"id differs", Filter{ID: "70"}, forPlugin, false},
		{"id and plugin match", Filter{ID: "7", Plugin: "liar"}, forPlugin, true},
		{"id matches, plugin not", Filter{ID: "7", Plugin: "other"}, forPlugin, false},
		{"id and -", Filter{ID: "8", Plugin: NoPlugin}, badOrder, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.filter.Match(tt.entry); got != tt.want {
				t.Errorf("%+v.Match(%+v) = %v, want %v", tt.filter, tt.entry, got, tt.want)
			}
		})
	}
}
