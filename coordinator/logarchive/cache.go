package logarchive

import (
	"container/list"
	"sync"
)

// lru keeps values up to a total cost, dropping the least recently used.
type lru[K comparable, V any] struct {
	mu   sync.Mutex
	max  int64
	used int64
	cost func(V) int64
	ll   list.List // of *lruEntry, most recent first
	m    map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key  K
	val  V
	cost int64
}

func newLRU[K comparable, V any](max int64, cost func(V) int64) *lru[K, V] {
	return &lru[K, V]{max: max, cost: cost, m: map[K]*list.Element{}}
}

func (c *lru[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*lruEntry[K, V]).val, true
}

func (c *lru[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		c.used -= e.Value.(*lruEntry[K, V]).cost
		c.ll.Remove(e)
	}
	ent := &lruEntry[K, V]{key: k, val: v, cost: c.cost(v)}
	c.m[k] = c.ll.PushFront(ent)
	c.used += ent.cost
	for c.used > c.max && c.ll.Len() > 1 {
		old := c.ll.Back().Value.(*lruEntry[K, V])
		c.ll.Remove(c.ll.Back())
		delete(c.m, old.key)
		c.used -= old.cost
	}
}
