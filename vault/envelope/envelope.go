// Package envelope is the sealed form of one secret: AES-256-GCM under a
// data key, with the wrapped data key carried alongside. It is pure: no
// I/O, no key provider; the caller brings the keys.
//
// Format, version 1 (all lengths checked before slicing, so a hostile blob
// fails to parse instead of panicking):
//
//	byte    version (1)
//	uint16  length of the wrapped key, big-endian (1..MaxWrappedKeyLen)
//	[]byte  wrapped key
//	[12]    GCM nonce
//	[]byte  ciphertext with the 16-byte GCM tag
package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	version1 = 1
	// MaxWrappedKeyLen bounds the wrapped data key (AWS KMS blobs are
	// about 200 bytes).
	MaxWrappedKeyLen = 1024
	// MaxPlaintextLen bounds one sealed secret.
	MaxPlaintextLen = 64 << 10
	nonceLen        = 12
	tagLen          = 16
	headerLen       = 3
)

var (
	// ErrMalformed means a blob does not parse as an envelope.
	ErrMalformed = errors.New("envelope: malformed")
	// ErrAuthFailed means the blob did not authenticate: wrong key,
	// tampered bytes, or additional data of another record.
	ErrAuthFailed = errors.New("envelope: authentication failed")
)

// Envelope is a parsed blob.
type Envelope struct {
	WrappedKey []byte
	nonce      []byte
	ciphertext []byte
}

// AAD is the additional data that binds a blob to a record: the name,
// length-prefixed, then the secret version (both big-endian), so a blob
// moved to another record or version fails to open.
func AAD(name string, version int64) []byte {
	b := make([]byte, 0, 4+len(name)+8)
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	return binary.BigEndian.AppendUint64(b, uint64(version))
}

// Seal encrypts plaintext under k with a fresh random nonce, into an
// envelope that carries wrappedKey (k's data key as the provider wrapped it).
func (k *Key) Seal(wrappedKey, plaintext, aad []byte) ([]byte, error) {
	var nonce [nonceLen]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("envelope: nonce: %w", err)
	}
	return k.seal(wrappedKey, plaintext, aad, nonce[:])
}

func (k *Key) seal(wrappedKey, plaintext, aad, nonce []byte) ([]byte, error) {
	switch {
	case len(wrappedKey) == 0 || len(wrappedKey) > MaxWrappedKeyLen:
		return nil, fmt.Errorf("envelope: the wrapped key must be 1 to %d bytes", MaxWrappedKeyLen)
	case len(plaintext) > MaxPlaintextLen:
		return nil, fmt.Errorf("envelope: a secret must be at most %d bytes", MaxPlaintextLen)
	}
	out := make([]byte, 0, headerLen+len(wrappedKey)+nonceLen+len(plaintext)+tagLen)
	out = append(out, version1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(wrappedKey)))
	out = append(out, wrappedKey...)
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, plaintext, aad), nil
}

// Parse splits a blob into its parts without decrypting anything.
func Parse(blob []byte) (Envelope, error) {
	if len(blob) < headerLen {
		return Envelope{}, fmt.Errorf("%w: too short", ErrMalformed)
	}
	if blob[0] != version1 {
		return Envelope{}, fmt.Errorf("%w: unknown version %d", ErrMalformed, blob[0])
	}
	n := int(binary.BigEndian.Uint16(blob[1:3]))
	if n == 0 || n > MaxWrappedKeyLen || n > len(blob)-headerLen-nonceLen-tagLen {
		return Envelope{}, fmt.Errorf("%w: bad wrapped-key length", ErrMalformed)
	}
	rest := blob[headerLen+n:]
	if len(rest)-nonceLen-tagLen > MaxPlaintextLen {
		return Envelope{}, fmt.Errorf("%w: too long", ErrMalformed)
	}
	return Envelope{WrappedKey: blob[headerLen : headerLen+n], nonce: rest[:nonceLen], ciphertext: rest[nonceLen:]}, nil
}

// Key is an unwrapped data key ready to open envelopes: its AES-GCM is set
// up once, so a cache of Keys saves the key schedule on every open.
type Key struct{ aead cipher.AEAD }

// NewKey prepares a 32-byte data key. The Key does not keep dataKey; the
// caller may clear it.
func NewKey(dataKey []byte) (*Key, error) {
	if len(dataKey) != 32 {
		return nil, errors.New("envelope: the data key must be 32 bytes")
	}
	aead, err := newGCM(dataKey)
	if err != nil {
		return nil, err
	}
	return &Key{aead: aead}, nil
}

// Open decrypts a parsed envelope.
func (k *Key) Open(env Envelope, aad []byte) ([]byte, error) {
	if len(env.nonce) != nonceLen {
		return nil, fmt.Errorf("%w: not parsed", ErrMalformed)
	}
	plain, err := k.aead.Open(nil, env.nonce, env.ciphertext, aad)
	if err != nil {
		return nil, ErrAuthFailed
	}
	return plain, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return cipher.NewGCM(block)
}

// Rewrap returns the blob with its wrapped data key replaced, the sealed
// secret untouched: re-wrapping under a new master key never decrypts a
// secret.
func Rewrap(blob, newWrappedKey []byte) ([]byte, error) {
	env, err := Parse(blob)
	if err != nil {
		return nil, err
	}
	if len(newWrappedKey) == 0 || len(newWrappedKey) > MaxWrappedKeyLen {
		return nil, fmt.Errorf("envelope: the wrapped key must be 1 to %d bytes", MaxWrappedKeyLen)
	}
	out := make([]byte, 0, headerLen+len(newWrappedKey)+len(env.nonce)+len(env.ciphertext))
	out = append(out, version1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(newWrappedKey)))
	out = append(out, newWrappedKey...)
	out = append(out, env.nonce...)
	return append(out, env.ciphertext...), nil
}
