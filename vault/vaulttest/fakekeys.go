// Package vaulttest holds conformance suites that every adapter of a vault
// interface runs (TestStore, TestKeyProvider), and in-memory fakes for the
// vault's own tests.
package vaulttest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/credvault/credvault/vault"
)

// FakeKeys is an in-memory vault.KeyProvider that counts its calls and can
// be made to fail, for tests of the vault's caching and failure handling.
type FakeKeys struct {
	aead cipher.AEAD

	Generates atomic.Int64
	Unwraps   atomic.Int64

	mu   sync.Mutex // guards fail
	fail error
}

var _ vault.KeyProvider = (*FakeKeys)(nil)

// NewFakeKeys returns a FakeKeys with a random master key.
func NewFakeKeys() *FakeKeys {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	return &FakeKeys{aead: aead}
}

// Fail makes every later call return err (nil to recover).
func (f *FakeKeys) Fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *FakeKeys) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail
}

// ID implements vault.KeyProvider.
func (f *FakeKeys) ID() string { return "fake" }

// GenerateDataKey implements vault.KeyProvider.
func (f *FakeKeys) GenerateDataKey(_ context.Context, encCtx map[string]string) (vault.DataKey, error) {
	f.Generates.Add(1)
	if err := f.failure(); err != nil {
		return vault.DataKey{}, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	nonce := make([]byte, f.aead.NonceSize())
	rand.Read(nonce)
	return vault.DataKey{Plaintext: key, Wrapped: f.aead.Seal(nonce, nonce, key, vault.ContextAAD(encCtx))}, nil
}

// UnwrapKey implements vault.KeyProvider.
func (f *FakeKeys) UnwrapKey(_ context.Context, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	f.Unwraps.Add(1)
	if err := f.failure(); err != nil {
		return nil, err
	}
	n := f.aead.NonceSize()
	if len(wrapped) < n {
		return nil, fmt.Errorf("fake unwrap: %w", vault.ErrKeyRejected)
	}
	key, err := f.aead.Open(nil, wrapped[:n], wrapped[n:], vault.ContextAAD(encCtx))
	if err != nil {
		return nil, fmt.Errorf("fake unwrap: %w", vault.ErrKeyRejected)
	}
	return key, nil
}

// ErrFakeOutage is a transient key-provider failure for FakeKeys.Fail.
var ErrFakeOutage = fmt.Errorf("fake outage: %w", vault.ErrKeyUnavailable)
