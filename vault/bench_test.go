package vault_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/credvault/credvault/authtypes"
	"github.com/credvault/credvault/vault"
)

// BenchmarkResolve is the whole Vault.Resolve of an API key on bbolt with
// the data key cached: the steady state of the hot path.
func BenchmarkResolve(b *testing.B) {
	e := newEnvB(b)
	ctx := context.Background()
	c, s := apiKey("credentials/bench", "k-1234567890")
	c.Placement = []authtypes.ParameterTemplate{{Location: authtypes.LocationQuery, Name: "appid", ValueTemplate: "{api_key}"}}
	if _, err := e.v.CreateCredential(ctx, c, s); err != nil {
		b.Fatal(err)
	}
	req := vault.ResolveRequest{Name: c.Name, Caller: e.app}
	before := e.keys.Unwraps.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.v.Resolve(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n := e.keys.Unwraps.Load() - before; n != 0 {
		b.Errorf("%d unwraps during steady-state resolves", n)
	}
}

// BenchmarkResolveParallel measures Resolve from all cores at once.
func BenchmarkResolveParallel(b *testing.B) {
	e := newEnvB(b)
	ctx := context.Background()
	for i := range 100 {
		c, s := apiKey(fmt.Sprintf("credentials/c%03d", i), "k")
		if _, err := e.v.CreateCredential(ctx, c, s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: fmt.Sprintf("credentials/c%03d", i%100), Caller: e.app}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
