package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/credvault/credvault/vault/envelope"
)

// Rewrapper re-wraps data keys under a new master key. With AWS KMS this is
// ReEncrypt, so data keys never leave KMS in plaintext; with local keys the
// data key is unwrapped and wrapped again in memory. Secrets are never
// decrypted either way.
type Rewrapper interface {
	// Rewrap returns wrapped (wrapped under the current key with encCtx)
	// wrapped under the new key with the same encCtx.
	Rewrap(ctx context.Context, wrapped []byte, encCtx map[string]string) ([]byte, error)
	// NewID is the new key provider's ID.
	NewID() string
}

const metaRewrapProgress = "rewrap_progress" // "<new id>\n<last credential done>"

// RewrapKeys re-wraps every data key of a stopped vault under a new master
// key: each credential's, and the fingerprint key. It is resumable: progress
// is committed with each credential, and a rerun with the same target
// continues where the last one stopped. Until it finishes, the database
// still names the old key provider, so no vault opens it half-way. It logs
// progress every few seconds and returns how many credentials it rewrapped.
func RewrapKeys(ctx context.Context, store Store, r Rewrapper, log *slog.Logger) (int, error) {
	if log == nil {
		log = slog.Default()
	}
	after := ""
	if p, err := store.Meta(ctx, metaRewrapProgress); err != nil {
		return 0, err
	} else if p != nil {
		target, last, _ := strings.Cut(string(p), "\n")
		if target != r.NewID() {
			return 0, fmt.Errorf("an unfinished rewrap to %q is in progress; finish it first", target)
		}
		after = last
		log.Info("resuming an interrupted rewrap", "after", after)
	}
	n, lastLog := 0, time.Now()
	for {
		batch, err := store.ListCredentials(ctx, after, 200)
		if err != nil {
			return n, err
		}
		if len(batch) == 0 {
			break
		}
		for _, c := range batch {
			env, err := envelope.Parse(c.Secret.Sealed)
			if err != nil {
				return n, fmt.Errorf("%s: %w", c.Name, ErrCorrupt)
			}
			wrapped, err := r.Rewrap(ctx, env.WrappedKey, encCtx(c.Name, c.Secret.Version))
			if err != nil {
				return n, fmt.Errorf("rewrapping %s: %w", c.Name, err)
			}
			next := c.clone()
			if next.Secret.Sealed, err = envelope.Rewrap(c.Secret.Sealed, wrapped); err != nil {
				return n, err
			}
			if err := store.PutCredential(ctx, next, Condition{Revision: c.Revision}, nil); err != nil {
				return n, fmt.Errorf("storing %s: %w", c.Name, err)
			}
			if err := store.PutMeta(ctx, metaRewrapProgress, []byte(r.NewID()+"\n"+c.Name)); err != nil {
				return n, err
			}
			after = c.Name
			n++
			if time.Since(lastLog) > 2*time.Second {
				log.Info("rewrap in progress", "credentials", n, "last", c.Name)
				lastLog = time.Now()
			}
		}
	}
	fp, err := store.Meta(ctx, metaFingerprintKey)
	if err != nil || fp == nil {
		return n, errors.Join(errors.New("the fingerprint key is missing"), err)
	}
	newFP, err := r.Rewrap(ctx, fp, map[string]string{"purpose": "fingerprint"})
	if err != nil {
		return n, fmt.Errorf("rewrapping the fingerprint key: %w", err)
	}
	if err := store.PutMeta(ctx, metaFingerprintKey, newFP); err != nil {
		return n, err
	}
	if err := store.PutMeta(ctx, metaKeyProvider, []byte(r.NewID())); err != nil {
		return n, err
	}
	log.Info("rewrap done", "credentials", n, "key_provider", r.NewID())
	return n, store.PutMeta(ctx, metaRewrapProgress, nil)
}

// KeyProviderID returns the key provider id a database was created with.
func KeyProviderID(ctx context.Context, store Store) (string, error) {
	id, err := store.Meta(ctx, metaKeyProvider)
	return string(id), err
}
