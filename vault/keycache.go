package vault

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/credvault/credvault/vault/envelope"
)

// keyCache holds unwrapped data keys, each ready to open (its AES-GCM set
// up), so that resolves in steady state make no key-provider (KMS) call
// and no key schedule. It is bounded in size and in age: an entry older
// than maxAge is unwrapped again, so a key disabled in KMS stops working
// within maxAge.
//
// Every resolve looks a key up, so a hit takes only a read lock: instead
// of moving entries in a list, a hit stamps the entry's last use, and a
// full cache evicts the least recently used of a few entries sampled at
// random (approximate LRU, as Redis does).
type keyCache struct {
	maxEntries int
	maxAge     time.Duration

	mu    sync.RWMutex // guards items
	items map[string]*keyCacheEntry
	clock atomic.Int64 // orders uses; a hit stamps the next value
}

type keyCacheEntry struct {
	key     *envelope.Key
	added   time.Time
	lastUse atomic.Int64
}

// evictionSample is how many entries a full cache compares to pick the
// one to evict.
const evictionSample = 8

func newKeyCache(maxEntries int, maxAge time.Duration) *keyCache {
	return &keyCache{maxEntries: maxEntries, maxAge: maxAge, items: make(map[string]*keyCacheEntry)}
}

// get returns the key for a wrapped key, if cached and fresh.
func (c *keyCache) get(wrapped []byte, now time.Time) (*envelope.Key, bool) {
	if c.maxEntries <= 0 {
		return nil, false
	}
	c.mu.RLock()
	e, ok := c.items[string(wrapped)] // no allocation for the lookup
	c.mu.RUnlock()
	if !ok {
		return nil, false
	}
	if now.Sub(e.added) > c.maxAge {
		c.mu.Lock()
		if c.items[string(wrapped)] == e {
			delete(c.items, string(wrapped))
		}
		c.mu.Unlock()
		return nil, false
	}
	e.lastUse.Store(c.clock.Add(1))
	return e.key, true
}

// put caches key under wrapped.
func (c *keyCache) put(wrapped []byte, key *envelope.Key, now time.Time) {
	if c.maxEntries <= 0 {
		return
	}
	e := &keyCacheEntry{key: key, added: now}
	e.lastUse.Store(c.clock.Add(1))
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[string(wrapped)]; !ok && len(c.items) >= c.maxEntries {
		c.evictLocked()
	}
	c.items[string(wrapped)] = e
}

// evictLocked drops the least recently used of a random sample (map
// iteration starts at a random place).
func (c *keyCache) evictLocked() {
	var victim string
	oldest, n := int64(-1), 0
	for k, e := range c.items {
		if use := e.lastUse.Load(); oldest < 0 || use < oldest {
			victim, oldest = k, use
		}
		if n++; n == evictionSample {
			break
		}
	}
	delete(c.items, victim)
}

// forget drops a wrapped key, when the record that used it is gone.
func (c *keyCache) forget(wrapped []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.items, string(wrapped))
}
