package envelope_test

import (
	"testing"

	"github.com/credvault/credvault/vault/envelope"
)

// BenchmarkOpen is the resolve hot path's decryption: AES-256-GCM open of
// a small secret with a cached data key (its AES-GCM already set up).
// FromRawKey sets the key up on every open, as a cache of raw keys would.
func BenchmarkOpen(b *testing.B) {
	dataKey := make([]byte, 32)
	key, err := envelope.NewKey(dataKey)
	if err != nil {
		b.Fatal(err)
	}
	blob, err := key.Seal([]byte("wrapped-key"), []byte("k-bench-0123456789"), envelope.AAD("credentials/apikey", 1))
	if err != nil {
		b.Fatal(err)
	}
	env, err := envelope.Parse(blob)
	if err != nil {
		b.Fatal(err)
	}
	aad := envelope.AAD("credentials/apikey", 1)
	b.Run("CachedKey", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := key.Open(env, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("FromRawKey", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			key, err := envelope.NewKey(dataKey)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := key.Open(env, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
}
