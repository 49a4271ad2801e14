package boltstore

import "sync"

// decodedCache keeps decoded records of the committed state, so the hot
// path (a resolve reads a credential and its caller on every call) needs
// neither a read transaction nor decoding.
//
// It can never serve a record older than the last acknowledged write: the
// store's own writes invalidate their keys after they commit and before they
// return (bbolt's file lock keeps every other process out), and a miss
// fills the cache only when no write was invalidated since the miss began
// (gen), so a reader that read the old record just before a write committed
// cannot put it back. It is bounded; when full, an arbitrary entry goes.
type decodedCache[T any] struct {
	max   int
	clone func(*T) *T

	mu      sync.RWMutex // guards gen and entries
	gen     uint64       // counts invalidations
	entries map[string]*T
}

func newDecodedCache[T any](max int, clone func(*T) *T) *decodedCache[T] {
	return &decodedCache[T]{max: max, clone: clone, entries: make(map[string]*T)}
}

// lookup returns a copy of the cached record under key.
func (c *decodedCache[T]) lookup(key string) (*T, bool) {
	c.mu.RLock()
	v, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok {
		return nil, false
	}
	return c.clone(v), true
}

// generation is read before a miss reads the store; fill takes it back.
func (c *decodedCache[T]) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// fill caches v (decoded in a transaction that began after generation
// returned gen) unless a write was invalidated since, and returns a copy
// for the caller. The cache keeps v.
func (c *decodedCache[T]) fill(key string, v *T, gen uint64) *T {
	if c.max <= 0 {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return v
	}
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[key] = v
	return c.clone(v)
}

// invalidate drops keys, or every entry when none are given. Writes call
// it once they have committed.
func (c *decodedCache[T]) invalidate(keys ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if len(keys) == 0 {
		clear(c.entries)
		return
	}
	for _, k := range keys {
		delete(c.entries, k)
	}
}
