package boltstore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/credvault/credvault/authtypes"
	"github.com/credvault/credvault/vault"
)

// BenchmarkGetCredential reads one credential: from the decoded cache (a
// resolve's usual case), and from bbolt (a read transaction and a JSON
// decode: the first read, or one after a write).
func BenchmarkGetCredential(b *testing.B) {
	ctx := context.Background()
	s, err := Open(filepath.Join(b.TempDir(), FileName), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := &vault.Credential{Name: "credentials/apikey", Type: authtypes.TypeAPIKey, Revision: 1, AllowedCallers: []string{"callers/app"},
		Placement: []authtypes.ParameterTemplate{{Location: authtypes.LocationQuery, Name: "appid", ValueTemplate: "{api_key}"}},
		Secret:    vault.SecretState{Version: 1, Fingerprint: "0123456789abcdef", Sealed: make([]byte, 120)}}
	if err := s.PutCredential(ctx, c, vault.Condition{MustNotExist: true}, nil); err != nil {
		b.Fatal(err)
	}
	b.Run("Cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.GetCredential(ctx, c.Name); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Bbolt", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.credentials.invalidate(c.Name)
			if _, err := s.GetCredential(ctx, c.Name); err != nil {
				b.Fatal(err)
			}
		}
	})
}
