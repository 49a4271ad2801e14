package boltstore

import (
	"bytes"
	"sync"
)

// decodedCache keeps decoded records next to the stored bytes they came
// from, so the hot path (a resolve reads a credential and its caller on
// every call) skips JSON decoding. It can never serve a stale record: a
// hit requires the bytes read in the current transaction to equal the
// cached bytes, and bbolt is the truth. It is bounded; when full, an
// arbitrary entry goes.
type decodedCache[T any] struct {
	max   int
	clone func(*T) *T

	mu      sync.Mutex // guards entries
	entries map[string]decodedEntry[T]
}

type decodedEntry[T any] struct {
	raw []byte
	val *T
}

func newDecodedCache[T any](max int, clone func(*T) *T) *decodedCache[T] {
	return &decodedCache[T]{max: max, clone: clone, entries: make(map[string]decodedEntry[T])}
}

// get returns a copy of the decoded form of raw (the bytes stored under
// key, read in an open transaction), decoding and caching it on a miss.
func (c *decodedCache[T]) get(key string, raw []byte, decode func([]byte, *T) error) (*T, error) {
	if c.max > 0 {
		c.mu.Lock()
		e, ok := c.entries[key]
		c.mu.Unlock()
		if ok && bytes.Equal(e.raw, raw) {
			return c.clone(e.val), nil
		}
	}
	var v T
	if err := decode(raw, &v); err != nil {
		return nil, err
	}
	if c.max > 0 {
		c.mu.Lock()
		if len(c.entries) >= c.max {
			for k := range c.entries {
				delete(c.entries, k)
				break
			}
		}
		// raw belongs to bbolt's mmap: keep a copy.
		c.entries[key] = decodedEntry[T]{raw: bytes.Clone(raw), val: &v}
		c.mu.Unlock()
	}
	return c.clone(&v), nil
}
