// Package topcustomers is a plugin that exists only as a test fixture: a
// leaderboard of customers, ZINCRBY top_customers <score> <who>. It is
// written against sdk alone, as an operator's own plugin would be, and the
// reload tests (host/e2e) drop it into a running host's plugin_dir to add a
// metric without a restart.
package topcustomers

import (
	"errors"
	"strings"

	"github.com/eventhost/eventhost/sdk"
)

// Name is the plugin's name: plugin "top-customers" {} runs
// eventhost-plugin-top-customers.
const Name = "top-customers"

// Keys written: the leaderboard is DefaultKey, or the key setting, which
// must stay inside KeyPattern.
const (
	KeyPattern = DefaultKey + "*"
	DefaultKey = "top_customers"
)

// Config field names and the values of score.
const (
	FieldScore = "score"
	FieldKey   = "key"
	ScoreCost  = "cost" // a customer's score is what they spent
	ScoreQty   = "qty"  // a customer's score is how many tickets they bought
)

// Leaderboard is the plugin. Configure sets it up.
type Leaderboard struct {
	key   string
	byQty bool
}

var _ sdk.Plugin = (*Leaderboard)(nil)

// New returns the plugin, to be configured.
func New() *Leaderboard { return &Leaderboard{key: DefaultKey} }

// Describe implements sdk.Plugin.
func (l *Leaderboard) Describe() sdk.Description {
	score, decimals := "SPENT", 2
	if l.byQty {
		score, decimals = "TICKETS", 0
	}
	return sdk.Description{
		Name:    Name,
		Version: "0.0.0-test",
		Keys:    []string{KeyPattern},
		Config: []sdk.Field{
			{Name: FieldScore, Type: sdk.TypeString, Default: ScoreCost,
				Doc: "what a customer scores per order: " + ScoreCost + " or " + ScoreQty},
			{Name: FieldKey, Type: sdk.TypeString, Default: DefaultKey,
				Doc: "the sorted set written; must start with " + DefaultKey},
		},
		Views: []sdk.View{{
			Title:       "Top customers",
			Leaderboard: &sdk.LeaderboardView{Key: l.key, MemberLabel: "CUSTOMER", ScoreLabel: score, Decimals: decimals},
		}},
	}
}

// Configure implements sdk.Plugin.
func (l *Leaderboard) Configure(cfg sdk.Config) error {
	var errs []error
	score := cfg.String(FieldScore)
	if score != ScoreCost && score != ScoreQty {
		errs = append(errs, sdk.FieldErrorf(FieldScore, "score %q is neither %q nor %q", score, ScoreCost, ScoreQty))
	}
	key := cfg.String(FieldKey)
	if !strings.HasPrefix(key, DefaultKey) {
		errs = append(errs, sdk.FieldErrorf(FieldKey, "key %q does not start with %q, the only keys the plugin declares", key, DefaultKey))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	l.key, l.byQty = key, score == ScoreQty
	return nil
}

// Handle implements sdk.Plugin.
func (l *Leaderboard) Handle(o sdk.Order, out *sdk.Effects) error {
	score := o.Cost
	if l.byQty {
		score = float64(o.Qty)
	}
	out.ZIncrBy(l.key, score, o.Who)
	return nil
}
