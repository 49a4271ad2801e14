package vaulttest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/credvault/credvault/vault"
)

// TestKeyProvider is the conformance suite of vault.KeyProvider: localkey
// and awskms (against the KMS fake) both run it.
func TestKeyProvider(t *testing.T, newProvider func(t *testing.T) vault.KeyProvider) {
	ctx := context.Background()
	encCtx := map[string]string{"credential": "credentials/a", "version": "1"}
	t.Run("RoundTrip", func(t *testing.T) {
		p := newProvider(t)
		if p.ID() == "" {
			t.Error("ID() is empty")
		}
		dk, err := p.GenerateDataKey(ctx, encCtx)
		if err != nil {
			t.Fatal(err)
		}
		if len(dk.Plaintext) != 32 || len(dk.Wrapped) == 0 || bytes.Contains(dk.Wrapped, dk.Plaintext) {
			t.Fatalf("GenerateDataKey = %d-byte key, %d-byte wrapped", len(dk.Plaintext), len(dk.Wrapped))
		}
		got, err := p.UnwrapKey(ctx, dk.Wrapped, encCtx)
		if err != nil || !bytes.Equal(got, dk.Plaintext) {
			t.Fatalf("UnwrapKey = %v", err)
		}
		dk2, _ := p.GenerateDataKey(ctx, encCtx)
		if bytes.Equal(dk.Plaintext, dk2.Plaintext) {
			t.Error("two data keys are equal")
		}
	})
	t.Run("WrongContextOrTamperedIsRejected", func(t *testing.T) {
		p := newProvider(t)
		dk, err := p.GenerateDataKey(ctx, encCtx)
		if err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]map[string]string{
			"other credential": {"credential": "credentials/b", "version": "1"},
			"other version":    {"credential": "credentials/a", "version": "2"},
			"no context":       nil,
		} {
			if _, err := p.UnwrapKey(ctx, dk.Wrapped, c); !errors.Is(err, vault.ErrKeyRejected) {
				t.Errorf("UnwrapKey with %s = %v, want ErrKeyRejected", name, err)
			}
		}
		tampered := bytes.Clone(dk.Wrapped)
		tampered[len(tampered)-1] ^= 1
		if _, err := p.UnwrapKey(ctx, tampered, encCtx); !errors.Is(err, vault.ErrKeyRejected) {
			t.Errorf("UnwrapKey of a tampered key = %v, want ErrKeyRejected", err)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		p := newProvider(t)
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dk, err := p.GenerateDataKey(ctx, encCtx)
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := p.UnwrapKey(ctx, dk.Wrapped, encCtx); err != nil || !bytes.Equal(got, dk.Plaintext) {
					t.Errorf("concurrent round trip: %v", err)
				}
			}()
		}
		wg.Wait()
	})
}
