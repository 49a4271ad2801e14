package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
)

// TestOnlineBackupUnderWrites takes a backup while creates keep coming,
// restores it into an empty data dir, and resolves every credential whose
// create was acknowledged before the backup started.
func TestOnlineBackupUnderWrites(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, nil)
	admin := d.adminToken(t)
	app := mintResolver(t, d, admin, "app")
	creds := credvaultv1.NewCredentialServiceClient(d.dial(t))
	actx := withToken(admin)

	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%05d", w, i)
				_, err := creds.CreateCredential(actx, &credvaultv1.CreateCredentialRequest{CredentialId: id,
					Credential: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, AllowedCallers: []string{"callers/app"}},
					Secret:     &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_ApiKey{ApiKey: &credvaultv1.ApiKeySecret{Key: "key-" + id}}}})
				if err == nil {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	backup := filepath.Join(t.TempDir(), "backup.db")
	cmd := exec.Command(builtBinary(t, "credvaultd"), "backup", "--to", backup, "--url", "http://"+d.httpAddr,
		"--token-file", filepath.Join(dir, "admin.token"))
	out, err := cmd.CombinedOutput()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("credvaultd backup: %v\n%s", err, out)
	}
	if len(before) < 10 {
		t.Fatalf("only %d creates before the backup; the test did not load the vault", len(before))
	}
	d.stop(t)

	restored := t.TempDir()
	if out, err := exec.Command(builtBinary(t, "credvaultd"), "restore", "--from", backup, "--data-dir", restored).CombinedOutput(); err != nil {
		t.Fatalf("credvaultd restore: %v\n%s", err, out)
	}
	// The same key provider is needed: the local key file (and the admin
	// token file, which is not part of the database).
	for _, f := range []string{"master.key", "admin.token"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		os.WriteFile(filepath.Join(restored, f), b, 0o600)
	}
	if out, err := exec.Command(builtBinary(t, "credvaultd"), "restore", "--from", backup, "--data-dir", restored).CombinedOutput(); err == nil || !strings.Contains(string(out), "exists") {
		t.Errorf("a restore over an existing database was not refused: %s", out)
	}
	// An audit journal left by a database that stopped without closing
	// belongs to that database: restore refuses to put another beside it.
	leftover := t.TempDir()
	os.WriteFile(filepath.Join(leftover, "credvault.db.audit-journal"), []byte("events"), 0o600)
	if out, err := exec.Command(builtBinary(t, "credvaultd"), "restore", "--from", backup, "--data-dir", leftover).CombinedOutput(); err == nil || !strings.Contains(string(out), "audit events") {
		t.Errorf("a restore beside another database's audit journal was not refused: %s", out)
	}
	d2 := startDaemon(t, restored, nil)
	resolver := credvaultv1.NewResolverServiceClient(d2.dial(t))
	rctx := withToken(app)
	for _, id := range before {
		r, err := resolver.ResolveCredential(rctx, &credvaultv1.ResolveCredentialRequest{Name: "credentials/" + id})
		if err != nil || r.GetParameters()[0].GetValue() != "key-"+id {
			t.Fatalf("credential %s, acknowledged before the backup, after restore: %v %v", id, r, err)
		}
	}
	t.Logf("%d credentials acknowledged before the backup all resolve after the restore (%d created in all)", len(before), len(acked))
	// The restored audit chain verifies.
	if out, _, code := d2.grpcurl(t, admin, "credvault.v1.CallerService/ListCallers", `{}`); code != 0 || !strings.Contains(out, "callers/app") {
		t.Errorf("callers after restore: %s", out)
	}
}
