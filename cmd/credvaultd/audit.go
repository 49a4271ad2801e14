package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/credvault/credvault/vault/boltstore"
)

// auditCmd runs `credvaultd audit verify`: it checks the audit hash chain of
// a stopped vault's database, offline. Exit status 1 names the first event
// that does not verify.
func auditCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return fmt.Errorf("usage: credvaultd audit verify [--data-dir DIR]")
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "./data", "data directory of a stopped vault")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	path := filepath.Join(*dataDir, boltstore.FileName)
	got, err := boltstore.VerifyFile(path, 2*time.Second)
	if err != nil {
		return fmt.Errorf("%w (is the vault still running? audit verify needs the file lock; use the VerifyAuditLog RPC on a running vault)", err)
	}
	if !got.OK {
		fmt.Fprintf(stdout, "audit log BROKEN: first bad event is sequence %d (%d events checked)\n", got.FirstBad, got.Checked)
		return errAuditBroken
	}
	fmt.Fprintf(stdout, "audit log ok: %d events verified\n", got.Checked)
	if got.Journaled > 0 {
		fmt.Fprintf(stdout, "%d of them are in the audit journal beside the database: the vault stopped without closing, and its next start folds them in\n", got.Journaled)
	}
	return nil
}

var errAuditBroken = fmt.Errorf("the audit chain does not verify")
