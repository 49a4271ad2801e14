package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/boltstore"
	"github.com/credvault/credvault/vault/keyprovider/awskms"
	"github.com/credvault/credvault/vault/keyprovider/localkey"
)

// keysCmd runs `credvaultd keys rewrap`: on a stopped vault, re-wrap every
// data key under a new master key without decrypting any secret.
//
//	credvaultd keys rewrap --data-dir DIR --kms-key-id NEW     (AWS KMS: ReEncrypt)
//	credvaultd keys rewrap --data-dir DIR --new-key-file FILE  (local key rotation)
func keysCmd(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rewrap" {
		return errors.New("usage: credvaultd keys rewrap --data-dir DIR (--kms-key-id NEW | --new-key-file FILE)")
	}
	fs := flag.NewFlagSet("keys rewrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "./data", "data directory of a stopped vault")
	newKMS := fs.String("kms-key-id", "", "the new AWS KMS key (id, ARN or alias)")
	newFile := fs.String("new-key-file", "", "the new local key file (created if missing)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if (*newKMS == "") == (*newFile == "") {
		return errors.New("give exactly one of --kms-key-id and --new-key-file")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	store, err := boltstore.Open(filepath.Join(*dataDir, boltstore.FileName), 2*time.Second)
	if err != nil {
		return fmt.Errorf("%w (stop the vault first: rewrap works offline)", err)
	}
	defer store.Close()
	oldID, err := vault.KeyProviderID(ctx, store)
	if err != nil {
		return err
	}
	var r vault.Rewrapper
	switch {
	case strings.HasPrefix(oldID, "awskms:") && *newKMS != "":
		old, err := awskms.New(ctx, strings.TrimPrefix(oldID, "awskms:"))
		if err != nil {
			return err
		}
		r = old.Rewrapper(*newKMS)
	case strings.HasPrefix(oldID, "local:") && *newFile != "":
		keyPath := filepath.Join(*dataDir, "master.key")
		old, err := localkey.Open(keyPath)
		if err != nil {
			return err
		}
		if old.ID() != oldID {
			return fmt.Errorf("%s is not the key this vault was created with", keyPath)
		}
		next, err := localkey.Open(*newFile)
		if err != nil {
			return err
		}
		r = localRewrapper{old: old, next: next}
	default:
		return fmt.Errorf("the vault uses %s; rewrap from it with --kms-key-id (awskms) or --new-key-file (local)", oldID)
	}
	n, err := vault.RewrapKeys(ctx, store, r, log)
	if err != nil {
		return fmt.Errorf("rewrap stopped after %d credentials (run it again to resume): %w", n, err)
	}
	if *newFile != "" {
		// The new key becomes the data dir's key; the old one is kept aside
		// for the operator to destroy once backups made with it are gone.
		keyPath := filepath.Join(*dataDir, "master.key")
		retired := keyPath + ".retired-" + time.Now().UTC().Format("20060102T150405")
		if err := os.Rename(keyPath, retired); err != nil {
			return err
		}
		b, err := os.ReadFile(*newFile)
		if err != nil {
			return err
		}
		if err := writeFileSync(keyPath, b, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "the new key is now %s; the old one is %s (destroy it when no backup needs it)\n", keyPath, retired)
	}
	fmt.Fprintf(stderr, "rewrapped %d credentials; start the vault with the new key (%s)\n", n, r.NewID())
	return nil
}

// localRewrapper moves data keys from one local key to another, in memory.
type localRewrapper struct {
	old, next *localkey.Provider
}

func (l localRewrapper) Rewrap(ctx context.Context, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	key, err := l.old.UnwrapKey(ctx, wrapped, encCtx)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	return l.next.WrapKey(ctx, key, encCtx)
}

func (l localRewrapper) NewID() string { return l.next.ID() }
