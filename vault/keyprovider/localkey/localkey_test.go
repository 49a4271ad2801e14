package localkey_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/keyprovider/localkey"
	"github.com/credvault/credvault/vault/vaulttest"
)

func TestConformance(t *testing.T) {
	vaulttest.TestKeyProvider(t, func(t *testing.T) vault.KeyProvider {
		p, err := localkey.Open(filepath.Join(t.TempDir(), "master.key"))
		if err != nil {
			t.Fatal(err)
		}
		return p
	})
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "master.key")
	p1, err := localkey.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() != 32 {
		t.Fatalf("key file: %v, %v", st, err)
	}
	p2, err := localkey.Open(path)
	if err != nil || p2.ID() != p1.ID() {
		t.Fatalf("reopen: %v, id %s vs %s", err, p2.ID(), p1.ID())
	}
	// A key wrapped by one opening unwraps with the other.
	ctx := t.Context()
	dk, _ := p1.GenerateDataKey(ctx, map[string]string{"credential": "credentials/a"})
	if got, err := p2.UnwrapKey(ctx, dk.Wrapped, map[string]string{"credential": "credentials/a"}); err != nil || string(got) != string(dk.Plaintext) {
		t.Fatalf("unwrap across openings: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := localkey.Open(path); err == nil {
		t.Error("a world-readable key file was accepted")
	}
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte("short"), 0o600)
	if _, err := localkey.Open(short); err == nil {
		t.Error("a 5-byte key file was accepted")
	}
}
