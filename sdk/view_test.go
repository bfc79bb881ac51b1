package sdk

import (
	"reflect"
	"strings"
	"testing"

	"github.com/eventhost/eventhost/sdk/proto/pluginv1"
)

func TestValidateViews(t *testing.T) {
	hist := func(key, counter string, buckets int) View {
		return View{Title: "h", Histogram: &HistogramView{Key: key, Counter: counter, FirstSlot: 1, Buckets: make([]string, buckets)}}
	}
	table := func(key string, cols int, sortBy int) View {
		v := View{Title: "t", Table: &TableView{Key: key, RowLabel: "EVENT", SortBy: sortBy}}
		for range cols {
			v.Table.Columns = append(v.Table.Columns, TableColumn{Label: "N", Suffix: ":n"})
		}
		return v
	}
	for _, tc := range []struct {
		name  string
		views []View
		bad   string // part of the error; "" for none
	}{
		{"none", nil, ""},
		{"histogram", []View{hist("h:day", "u8", 24), hist("h:day:*", "i64", 24)}, ""},
		{"table", []View{table("sum", 2, 1)}, ""},
		{"leaderboard", []View{{Leaderboard: &LeaderboardView{Key: "top_x", Limit: 5}}}, ""},
		{"key count", []View{{KeyCount: &KeyCountView{Pattern: "inv:*"}}}, ""},
		{"bad counter", []View{hist("h:day", "u64", 24)}, `counter "u64"`},
		{"no buckets", []View{hist("h:day", "u8", 0)}, "0 buckets"},
		{"too many buckets", []View{hist("h:day", "u8", MaxBuckets+1)}, "257 buckets"},
		{"two stars", []View{hist("h:*:*", "u8", 1)}, "more than one '*'"},
		{"key not declared", []View{hist("purchase_order_details:*", "u8", 1)}, "not inside the key patterns"},
		{"pattern wider than declared", []View{{KeyCount: &KeyCountView{Pattern: "*"}}}, "not inside"},
		{"table pattern", []View{table("sum*", 1, 0)}, "is a pattern"},
		{"table no columns", []View{table("sum", 0, 0)}, "0 columns"},
		{"table sort out of range", []View{table("sum", 2, 2)}, "sort by column 2"},
		{"leaderboard limit", []View{{Leaderboard: &LeaderboardView{Key: "top_x", Limit: MaxLeaders + 1}}}, "limit 101"},
		{"no kind", []View{{Title: "x"}}, "this one is 0"},
		{"two kinds", []View{{KeyCount: &KeyCountView{Pattern: "inv:*"}, Leaderboard: &LeaderboardView{Key: "top_x"}}}, "this one is 2"},
		{"long title", []View{{Title: strings.Repeat("x", MaxLabelBytes+1), KeyCount: &KeyCountView{Pattern: "inv:*"}}}, "at most 200 bytes"},
		{"too many", make([]View, MaxViews+1), "17 views"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Description{Name: "p", Keys: []string{"h:day", "h:day:*", "sum", "top_*", "inv:*"}, Views: tc.views}
			err := ValidateViews(d)
			if tc.bad == "" && err != nil {
				t.Fatalf("ValidateViews: %v", err)
			}
			if tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)) {
				t.Fatalf("ValidateViews = %v, want an error containing %q", err, tc.bad)
			}
		})
	}
}

// Views survive the wire, and a description with a view the host cannot
// show is refused where the host reads it.
func TestViewsRoundTrip(t *testing.T) {
	d := Description{
		Name: "p", Keys: []string{"h:*", "sum", "top", "inv:*"},
		Views: []View{
			{Title: "hist", Histogram: &HistogramView{Key: "h:*", Counter: "i16", FirstSlot: 1, Buckets: HourBuckets()}},
			{Title: "table", Table: &TableView{Key: "sum", RowLabel: "E", SortBy: 1, Columns: []TableColumn{
				{Label: "A", Suffix: ":a"}, {Label: "B", Suffix: ":b", Decimals: 2}}}},
			{Title: "top", Leaderboard: &LeaderboardView{Key: "top", Limit: 3, MemberLabel: "M", ScoreLabel: "S", Decimals: 1}},
			{Title: "count", KeyCount: &KeyCountView{Pattern: "inv:*", SizeLabel: "N", KeysLabel: "K"}},
		},
	}
	resp, err := DescriptionToProto(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DescriptionFromProto(resp)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Views, d.Views) {
		t.Errorf("views = %+v\nwant %+v", got.Views, d.Views)
	}

	resp.Views[0].GetHistogram().Key = "purchase_order_details:*"
	if _, err := DescriptionFromProto(resp); err == nil || !strings.Contains(err.Error(), "cannot show") {
		t.Errorf("a view on an undeclared key: err = %v", err)
	}
	resp.Views[0].GetHistogram().Key = "h:*"
	resp.Views[1].GetTable().SortBy = 1 << 31
	if _, err := DescriptionFromProto(resp); err == nil {
		t.Error("sort_by 2^31: no error")
	}
}

// A plugin built before views sends none: its description reads as before.
func TestOldPluginHasNoViews(t *testing.T) {
	d, err := DescriptionFromProto(&pluginv1.DescribeResponse{Name: "old", Keys: []string{"k"}})
	if err != nil || d.Views != nil {
		t.Errorf("description of an old plugin: views %v, err %v", d.Views, err)
	}
}
