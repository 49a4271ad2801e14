package vault

import (
	"fmt"
	"testing"
	"time"

	"github.com/credvault/credvault/vault/envelope"
)

func TestKeyCache(t *testing.T) {
	key, err := envelope.NewKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		run  func(t *testing.T, c *keyCache)
	}{
		{"bounded, and a key in use survives churn", func(t *testing.T, c *keyCache) {
			c.put([]byte("hot"), key, now)
			for i := range 1000 {
				c.put(fmt.Appendf(nil, "cold-%d", i), key, now)
				if _, ok := c.get([]byte("hot"), now); !ok {
					t.Fatalf("the key in constant use was evicted after %d puts", i+1)
				}
			}
			if n := len(c.items); n != 16 {
				t.Errorf("cache holds %d keys, want its bound 16", n)
			}
		}},
		{"expires after maxAge", func(t *testing.T, c *keyCache) {
			c.put([]byte("k"), key, now)
			if _, ok := c.get([]byte("k"), now.Add(time.Hour)); !ok {
				t.Error("a key at exactly maxAge is gone")
			}
			if _, ok := c.get([]byte("k"), now.Add(time.Hour+time.Second)); ok {
				t.Error("a key older than maxAge is still served")
			}
			if _, ok := c.items["k"]; ok {
				t.Error("an expired key stays in the cache")
			}
		}},
		{"forget", func(t *testing.T, c *keyCache) {
			c.put([]byte("k"), key, now)
			c.forget([]byte("k"))
			if _, ok := c.get([]byte("k"), now); ok {
				t.Error("a forgotten key is still served")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newKeyCache(16, time.Hour)) })
	}
	disabled := newKeyCache(-1, time.Hour)
	disabled.put([]byte("k"), key, now)
	if _, ok := disabled.get([]byte("k"), now); ok {
		t.Error("a disabled cache served a key")
	}
}
