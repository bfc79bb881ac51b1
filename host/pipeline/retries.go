package pipeline

import (
	"sort"
	"sync"
	"time"

	"github.com/eventhost/eventhost/host/orders"
)

// retryQueue holds orders waiting for another try on some plugins, by due
// time. Retries are rare, so a sorted slice does. The apply stage pushes,
// the gathering stage pops.
type retryQueue struct {
	mu    sync.Mutex
	items []retryItem
}

type retryItem struct {
	due time.Time
	ref orders.Ref
}

func (q *retryQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

func (q *retryQueue) push(due time.Time, r orders.Ref) {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := sort.Search(len(q.items), func(i int) bool { return q.items[i].due.After(due) })
	q.items = append(q.items, retryItem{})
	copy(q.items[i+1:], q.items[i:])
	q.items[i] = retryItem{due: due, ref: r}
}

// next is the earliest due time.
func (q *retryQueue) next() (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return time.Time{}, false
	}
	return q.items[0].due, true
}

// popDue appends to dst, up to limit refs in all, the refs due by now.
func (q *retryQueue) popDue(now time.Time, dst []orders.Ref, limit int) []orders.Ref {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for n < len(q.items) && len(dst) < limit && !q.items[n].due.After(now) {
		dst = append(dst, q.items[n].ref)
		n++
	}
	q.items = q.items[n:]
	return dst
}
