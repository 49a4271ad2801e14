package vault

import (
	"container/list"
	"sync"
	"time"

	"github.com/credvault/credvault/vault/envelope"
)

// keyCache holds unwrapped data keys, each ready to open (its AES-GCM set
// up), so that resolves in steady state make no key-provider (KMS) call
// and no key schedule. It is bounded in size (least recently used entries
// go first) and in age (an entry older than maxAge is unwrapped again, so a
// key disabled in KMS stops working within maxAge).
type keyCache struct {
	maxEntries int
	maxAge     time.Duration

	mu    sync.Mutex // guards ll and items
	ll    *list.List // front = most recently used; values are *keyCacheEntry
	items map[string]*list.Element
}

type keyCacheEntry struct {
	wrapped string
	key     *envelope.Key
	added   time.Time
}

func newKeyCache(maxEntries int, maxAge time.Duration) *keyCache {
	return &keyCache{maxEntries: maxEntries, maxAge: maxAge, ll: list.New(), items: make(map[string]*list.Element)}
}

// get returns the plaintext key for a wrapped key, if cached and fresh.
func (c *keyCache) get(wrapped []byte, now time.Time) (*envelope.Key, bool) {
	if c.maxEntries <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[string(wrapped)] // no allocation for the lookup
	if !ok {
		return nil, false
	}
	e := el.Value.(*keyCacheEntry)
	if now.Sub(e.added) > c.maxAge {
		c.removeLocked(el)
		return nil, false
	}
	c.ll.MoveToFront(el)
	return e.key, true
}

// put caches key under wrapped.
func (c *keyCache) put(wrapped []byte, key *envelope.Key, now time.Time) {
	if c.maxEntries <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[string(wrapped)]; ok {
		e := el.Value.(*keyCacheEntry)
		e.key, e.added = key, now
		c.ll.MoveToFront(el)
		return
	}
	e := &keyCacheEntry{wrapped: string(wrapped), key: key, added: now}
	c.items[e.wrapped] = c.ll.PushFront(e)
	for c.ll.Len() > c.maxEntries {
		c.removeLocked(c.ll.Back())
	}
}

// forget drops a wrapped key, when the record that used it is gone.
func (c *keyCache) forget(wrapped []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[string(wrapped)]; ok {
		c.removeLocked(el)
	}
}

func (c *keyCache) removeLocked(el *list.Element) {
	// The key is not zeroed: a resolve may still be using it; the GC drops it.
	e := el.Value.(*keyCacheEntry)
	c.ll.Remove(el)
	delete(c.items, e.wrapped)
}

func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
