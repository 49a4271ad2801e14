package vault

import (
	"context"
	"encoding/binary"
	"slices"
)

// KeyProvider wraps and unwraps the data keys that seal each secret
// (envelope encryption). The vault never hands a secret to the provider, only
// 256-bit data keys. Implementations must be safe for concurrent use.
//
// encCtx binds a wrapped key to the record it protects ({"credential": name,
// "version": "N"}); unwrapping with a different context must fail. With AWS
// KMS this is the EncryptionContext, so CloudTrail shows which credential was
// unwrapped.
//
// Errors wrap ErrKeyUnavailable (transient: retry later) or ErrKeyRejected
// (permanent: the wrapped key, the key id or the key's state is wrong).
type KeyProvider interface {
	// ID names the provider and its key (for example "local:3f2a…" or
	// "awskms:arn:aws:kms:…"). It is stored with the database so that a vault
	// is not opened with the wrong key by accident.
	ID() string

	// GenerateDataKey returns a fresh random 256-bit data key, in plaintext and
	// wrapped under the provider's key with encCtx.
	GenerateDataKey(ctx context.Context, encCtx map[string]string) (DataKey, error)

	// UnwrapKey returns the plaintext of a data key that GenerateDataKey
	// wrapped with the same encCtx, in a slice of its own: the caller
	// clears it once the key is set up.
	UnwrapKey(ctx context.Context, wrapped []byte, encCtx map[string]string) ([]byte, error)
}

// DataKey is a data key in both forms. Plaintext must be zeroed or dropped by
// the caller as soon as it is no longer needed; only Wrapped is stored.
type DataKey struct {
	Plaintext []byte
	Wrapped   []byte
}

// ContextAAD encodes an encryption context canonically (keys sorted, each
// key and value length-prefixed), for key providers that bind it as
// additional data of their own AEAD.
func ContextAAD(encCtx map[string]string) []byte {
	keys := make([]string, 0, len(encCtx))
	for k := range encCtx {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b []byte
	for _, k := range keys {
		b = binary.BigEndian.AppendUint32(b, uint32(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(encCtx[k])))
		b = append(b, encCtx[k]...)
	}
	return b
}
