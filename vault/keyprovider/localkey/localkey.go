// Package localkey is the embedded default key provider: a 256-bit key in
// a file (mode 0600) that wraps each data key with AES-256-GCM, the
// encryption context as additional data. It suits one machine; AWS KMS
// (package awskms) keeps the key out of the machine.
package localkey

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/credvault/credvault/vault"
)

// Provider wraps data keys under a local key.
type Provider struct {
	aead cipher.AEAD
	id   string

	generates, unwraps atomic.Int64
}

var _ vault.KeyProvider = (*Provider)(nil)

const keyLen = 32

// Open loads the key at path, creating it (32 random bytes, mode 0600,
// synced) when the file does not exist. A key file readable by group or
// others, or of the wrong size, is refused.
func Open(path string) (*Provider, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err = create(path)
	}
	if err != nil {
		return nil, fmt.Errorf("local key %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("local key %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("local key %s: mode %v lets others read it; chmod 600 it", path, st.Mode().Perm())
	}
	if len(key) != keyLen {
		return nil, fmt.Errorf("local key %s: must be exactly %d bytes", path, keyLen)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(key)
	clear(key)
	return &Provider{aead: aead, id: "local:" + hex.EncodeToString(sum[:])[:16]}, nil
}

// create writes a fresh key with O_EXCL (two processes racing on first
// start cannot both create one), syncs it and its directory.
func create(path string) ([]byte, error) {
	key := make([]byte, keyLen)
	rand.Read(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return key, nil
}

// ID implements vault.KeyProvider: a key identifier, not the key.
func (p *Provider) ID() string { return p.id }

// GenerateDataKey implements vault.KeyProvider.
func (p *Provider) GenerateDataKey(_ context.Context, encCtx map[string]string) (vault.DataKey, error) {
	p.generates.Add(1)
	key := make([]byte, keyLen)
	rand.Read(key)
	nonce := make([]byte, p.aead.NonceSize())
	rand.Read(nonce)
	return vault.DataKey{Plaintext: key, Wrapped: p.aead.Seal(nonce, nonce, key, vault.ContextAAD(encCtx))}, nil
}

// UnwrapKey implements vault.KeyProvider.
func (p *Provider) UnwrapKey(_ context.Context, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	p.unwraps.Add(1)
	n := p.aead.NonceSize()
	if len(wrapped) != n+keyLen+p.aead.Overhead() {
		return nil, fmt.Errorf("local key: wrapped key has the wrong size: %w", vault.ErrKeyRejected)
	}
	key, err := p.aead.Open(nil, wrapped[:n], wrapped[n:], vault.ContextAAD(encCtx))
	if err != nil {
		return nil, fmt.Errorf("local key: wrapped key does not authenticate (tampered, other key or other record): %w", vault.ErrKeyRejected)
	}
	return key, nil
}

// Calls returns how many data keys were generated and unwrapped.
func (p *Provider) Calls() map[string]int64 {
	return map[string]int64{"GenerateDataKey": p.generates.Load(), "Decrypt": p.unwraps.Load()}
}

// WrapKey wraps an existing data key under this provider's key with
// encCtx: for re-wrapping data keys when the local key is rotated.
func (p *Provider) WrapKey(_ context.Context, key []byte, encCtx map[string]string) ([]byte, error) {
	if len(key) != keyLen {
		return nil, fmt.Errorf("local key: a data key must be %d bytes", keyLen)
	}
	nonce := make([]byte, p.aead.NonceSize())
	rand.Read(nonce)
	return p.aead.Seal(nonce, nonce, key, vault.ContextAAD(encCtx)), nil
}
