package publish

import (
	"fmt"
	"math/rand/v2"
	"strconv"
)

// Order is one purchase order as the shop stores it in its Redis hash.
type Order struct {
	ID    string
	TS    int64 // unix seconds
	Qty   int64 // 1..8
	Cost  string
	Event string
	Who   string
}

// Fields returns the order's hash fields as field/value pairs in a fixed
// order, ready for HSET. The id is not a field: it is part of the key.
func (o Order) Fields() []any {
	return []any{"ts", o.TS, "qty", o.Qty, "cost", o.Cost, "event", o.Event, "who", o.Who}
}

// Hash returns the fields as Redis stores them, for comparing with HGETALL.
func (o Order) Hash() map[string]string {
	return map[string]string{
		"ts":    strconv.FormatInt(o.TS, 10),
		"qty":   strconv.FormatInt(o.Qty, 10),
		"cost":  o.Cost,
		"event": o.Event,
		"who":   o.Who,
	}
}

const (
	// GamesStart and GamesEnd bound the Tokyo 2020 Games (held in 2021), in
	// unix seconds, both inclusive: 2021-07-23T00:00:00Z .. 2021-08-08T23:59:59Z.
	GamesStart int64 = 1626998400
	GamesEnd   int64 = GamesStart + 17*86400 - 1

	// Customers is how many distinct customer ids the generator draws from.
	Customers = 5000
	// MaxQty is the most tickets one order buys.
	MaxQty = 8
)

// eventPrices holds each event's unit price in cents. It is a slice, not a
// map, so that the generator's draws do not depend on map iteration order.
var eventPrices = [...]struct {
	event string
	cents int64
}{
	{"Athletics: Men's 100m Final", 95000},
	{"Athletics: Women's 100m Final", 87550},
	{"Athletics: Men's Marathon", 4500},
	{"Athletics: Women's 4x400m Relay Final", 62025},
	{"Athletics: Men's High Jump Final", 38099},
	{"Swimming: Women's 200m Butterfly", 32050},
	{"Swimming: Men's 100m Freestyle Final", 58500},
	{"Swimming: Mixed 4x100m Medley Relay", 41275},
	{"Gymnastics: Women's All-Around Final", 72000},
	{"Gymnastics: Men's Rings Final", 29995},
	{"Basketball: Men's Gold Medal Game", 91500},
	{"Basketball: Women's Semifinal", 35010},
	{"Football: Women's Final", 49999},
	{"Football: Men's Group Stage", 8050},
	{"Tennis: Men's Singles Final", 66600},
	{"Tennis: Women's Doubles Quarterfinal", 15525},
	{"Volleyball: Women's Bronze Medal Match", 21000},
	{"Beach Volleyball: Men's Final", 27345},
	{"Judo: Men's -73kg Final", 12075},
	{"Karate: Women's Kumite +61kg", 9900},
	{"Skateboarding: Women's Street Final", 18430},
	{"Surfing: Men's Shortboard Final", 14000},
	{"Sport Climbing: Men's Combined Final", 22580},
	{"Cycling Track: Women's Keirin Final", 17765},
	{"Rowing: Men's Eight Final", 11001},
	{"Fencing: Women's Epee Individual", 10350},
	{"Table Tennis: Mixed Doubles Final", 25590},
	{"Baseball: Gold Medal Game", 78000},
	{"Equestrian: Dressage Individual Final", 13460},
	{"Diving: Men's 10m Platform Final", 30725},
}

// Events returns the event names the generator draws from, in a fixed order.
// The slice is a copy; changing it changes nothing here.
func Events() []string {
	out := make([]string, len(eventPrices))
	for i, e := range eventPrices {
		out[i] = e.event
	}
	return out
}

// UnitPrice returns the price of one ticket for event in cents; ok is false
// for an event the generator does not know.
func UnitPrice(event string) (cents int64, ok bool) {
	for _, e := range eventPrices {
		if e.event == event {
			return e.cents, true
		}
	}
	return 0, false
}

// FormatCents renders an amount in cents as a decimal string with exactly two
// decimals, e.g. 24550 -> "245.50".
func FormatCents(cents int64) string {
	// The nearest float64 to cents/100 is within far less than half a cent of
	// it for any realistic amount, so rounding to 2 decimals gives it back
	// exactly.
	return strconv.FormatFloat(float64(cents)/100, 'f', 2, 64)
}

// Generator produces a deterministic stream of plausible orders. It is not
// safe for concurrent use.
type Generator struct {
	seed int64
	n    int64
	rng  *rand.Rand
}

// NewGenerator returns a Generator whose stream depends only on seed: two
// generators with the same seed produce the same orders, including ids.
func NewGenerator(seed int64) *Generator {
	// The second PCG word is a fixed odd constant so that seed 0 still gives
	// a well-mixed stream.
	return &Generator{seed: seed, rng: rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))}
}

// Next returns the next order. Ids are "<seed>-<n>" with n counting from 1,
// so they are unique within one generator and across generators with
// different seeds.
func (g *Generator) Next() Order {
	g.n++
	ev := eventPrices[g.rng.IntN(len(eventPrices))]
	qty := 1 + g.rng.Int64N(MaxQty)
	return Order{
		ID:    fmt.Sprintf("%d-%07d", g.seed, g.n),
		TS:    GamesStart + g.rng.Int64N(GamesEnd-GamesStart+1),
		Qty:   qty,
		Cost:  FormatCents(qty * ev.cents),
		Event: ev.event,
		Who:   fmt.Sprintf("cust-%05d", g.rng.IntN(Customers)),
	}
}
