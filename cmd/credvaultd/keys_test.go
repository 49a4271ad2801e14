package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credvault/credvault/authtypes"
	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/boltstore"
	"github.com/credvault/credvault/vault/keyprovider/awskms"
	"github.com/credvault/credvault/vault/keyprovider/awskms/awskmstest"
	"github.com/credvault/credvault/vault/keyprovider/localkey"
)

// seedVault creates n API-key credentials readable by callers/app.
func seedVault(t *testing.T, dir string, keys vault.KeyProvider, n int) {
	t.Helper()
	ctx := context.Background()
	store, err := boltstore.Open(filepath.Join(dir, boltstore.FileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	v, err := vault.New(ctx, vault.Config{Store: store, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := v.CreateCredential(ctx, &vault.Credential{Name: fmt.Sprintf("credentials/c%02d", i), Type: authtypes.TypeAPIKey,
			AllowedCallers: []string{"callers/app"}}, authtypes.Secret{APIKey: &authtypes.APIKeySecret{Key: fmt.Sprintf("k%02d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
}

// resolveAll opens the vault with keys and resolves every credential.
func resolveAll(t *testing.T, dir string, keys vault.KeyProvider, n int) {
	t.Helper()
	ctx := context.Background()
	store, err := boltstore.Open(filepath.Join(dir, boltstore.FileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	v, err := vault.New(ctx, vault.Config{Store: store, Keys: keys, DataKeyCacheSize: -1})
	if err != nil {
		t.Fatalf("opening the vault after rewrap: %v", err)
	}
	app := &vault.Caller{Name: "callers/app", Roles: []vault.Role{vault.RoleResolver}}
	for i := range n {
		r, err := v.Resolve(ctx, vault.ResolveRequest{Name: fmt.Sprintf("credentials/c%02d", i), Caller: app})
		if err != nil || r.Parameters[0].Value != fmt.Sprintf("k%02d", i) {
			t.Fatalf("resolve c%02d after rewrap = %v, %v", i, r, err)
		}
	}
}

// TestKeysRewrapKMS: rewrap to a second KMS key with ReEncrypt, resumed
// after an interruption; then the old key is disabled and every credential
// still resolves.
func TestKeysRewrapKMS(t *testing.T) {
	fake, err := awskmstest.New("")
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Stop)
	oldID, newID := fake.CreateKey(), fake.CreateKey()
	fake.AddAlias("alias/old", oldID)
	fake.AddAlias("alias/new", newID)
	for k, v := range map[string]string{"AWS_ENDPOINT_URL_KMS": fake.URL(), "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x",
		"AWS_SECRET_ACCESS_KEY": "x", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"} {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	dir := t.TempDir()
	old, err := awskms.New(ctx, "alias/old")
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	seedVault(t, dir, old, n)

	// Interrupted: KMS throttles for good after a few calls.
	fake.Throttle(0)
	var stderr bytes.Buffer
	before := fake.Calls("ReEncrypt")
	fake.SetDelay(0)
	interrupt := func() {
		for fake.Calls("ReEncrypt") < before+5 {
			time.Sleep(time.Millisecond)
		}
		fake.Throttle(-1)
	}
	go interrupt()
	interrupted := keysCmd(ctx, []string{"rewrap", "--data-dir", dir, "--kms-key-id", "alias/new"}, &stderr) != nil
	fake.Throttle(0)
	stderr.Reset()
	if err := keysCmd(ctx, []string{"rewrap", "--data-dir", dir, "--kms-key-id", "alias/new"}, &stderr); err != nil {
		t.Fatalf("keys rewrap: %v\n%s", err, stderr.String())
	}
	if interrupted != strings.Contains(stderr.String(), "resuming an interrupted rewrap") {
		t.Errorf("interrupted %v, but the second run says: %s", interrupted, stderr.String())
	}
	if !interrupted {
		t.Log("the rewrap finished before the interruption; resumption was not exercised")
	}
	if !strings.Contains(stderr.String(), "rewrapped") {
		t.Errorf("output: %s", stderr.String())
	}
	fake.SetEnabled(oldID, false)
	decrypts := fake.Calls("Decrypt")
	next, _ := awskms.New(ctx, "alias/new")
	resolveAll(t, dir, next, n)
	if fake.Calls("Decrypt") == decrypts {
		t.Error("resolving made no Decrypt: the test does not exercise the new key")
	}
}

// TestKeysRewrapLocal rotates the local key file.
func TestKeysRewrapLocal(t *testing.T) {
	dir := t.TempDir()
	old, err := localkey.Open(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	seedVault(t, dir, old, 5)
	newKey := filepath.Join(t.TempDir(), "new.key")
	var stderr bytes.Buffer
	if err := keysCmd(context.Background(), []string{"rewrap", "--data-dir", dir, "--new-key-file", newKey}, &stderr); err != nil {
		t.Fatalf("keys rewrap: %v\n%s", err, stderr.String())
	}
	rotated, err := localkey.Open(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	if rotated.ID() == old.ID() {
		t.Fatal("master.key was not replaced")
	}
	resolveAll(t, dir, rotated, 5)
}
