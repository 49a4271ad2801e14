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
	ok, checked, bad, err := boltstore.VerifyFile(path, 2*time.Second)
	if err != nil {
		return fmt.Errorf("%w (is the vault still running? audit verify needs the file lock; use the VerifyAuditLog RPC on a running vault)", err)
	}
	if !ok {
		fmt.Fprintf(stdout, "audit log BROKEN: first bad event is sequence %d (%d events checked)\n", bad, checked)
		return errAuditBroken
	}
	fmt.Fprintf(stdout, "audit log ok: %d events verified\n", checked)
	return nil
}

var errAuditBroken = fmt.Errorf("the audit chain does not verify")
