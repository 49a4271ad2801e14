package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
)

// TestKill9DuringWrites kills the daemon with SIGKILL in the middle of a
// storm of concurrent creates, rotations and deletes. After a restart the
// database opens, every acknowledged write is there (and resolves with the
// acknowledged secret), every acknowledged delete is gone, and the audit
// chain verifies.
func TestKill9DuringWrites(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, nil)
	admin := d.adminToken(t)
	app := mintResolver(t, d, admin, "app")
	creds := credvaultv1.NewCredentialServiceClient(d.dial(t))
	actx := withToken(admin)

	type state struct {
		key     string // last acknowledged secret; "" = acknowledged deleted
		pending bool   // an unacknowledged write may or may not have landed
	}
	var mu sync.Mutex
	want := map[string]*state{}
	var wg sync.WaitGroup
	var ops int
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("c%d-%04d", w, i%40)
				name := "credentials/" + id
				key := fmt.Sprintf("k-%d-%d", w, i)
				mu.Lock()
				st := want[name]
				if st == nil {
					st = &state{}
					want[name] = st
				}
				op := i % 3
				if st.pending {
					mu.Unlock()
					return
				}
				st.pending = true
				ops++
				mu.Unlock()
				var err error
				switch {
				case st.key == "":
					_, err = creds.CreateCredential(actx, &credvaultv1.CreateCredentialRequest{CredentialId: id,
						Credential: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, AllowedCallers: []string{"callers/app"}},
						Secret:     &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_ApiKey{ApiKey: &credvaultv1.ApiKeySecret{Key: key}}}})
				case op == 1:
					_, err = creds.RotateCredentialSecret(actx, &credvaultv1.RotateCredentialSecretRequest{Name: name,
						Secret: &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_ApiKey{ApiKey: &credvaultv1.ApiKeySecret{Key: key}}}})
				default:
					_, err = creds.DeleteCredential(actx, &credvaultv1.DeleteCredentialRequest{Name: name})
					key = ""
				}
				mu.Lock()
				if err == nil {
					st.key, st.pending = key, false
				} else if status.Code(err) == codes.Unavailable || status.Code(err) == codes.Canceled {
					mu.Unlock()
					return // the daemon died with this write in flight: leave it pending
				} else {
					st.pending = false
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
	d.killed = true
	wg.Wait()

	d2 := startDaemon(t, dir, nil)
	resolver := credvaultv1.NewResolverServiceClient(d2.dial(t))
	rctx := withToken(app)
	checked := 0
	for name, st := range want {
		if st.pending {
			continue // in flight at the kill: either outcome is allowed, but it must be whole
		}
		r, err := resolver.ResolveCredential(rctx, &credvaultv1.ResolveCredentialRequest{Name: name})
		switch {
		case st.key == "" && status.Code(err) != codes.PermissionDenied:
			t.Errorf("%s was deleted (acknowledged) but resolves: %v %v", name, r, err)
		case st.key != "" && (err != nil || r.GetParameters()[0].GetValue() != st.key):
			t.Errorf("%s: acknowledged secret %q, after the crash %v %v", name, st.key, r, err)
		}
		checked++
	}
	// Writes in flight are all-or-nothing: such a credential resolves or is
	// absent, never unreadable.
	for name, st := range want {
		if st.pending {
			if _, err := resolver.ResolveCredential(rctx, &credvaultv1.ResolveCredentialRequest{Name: name}); err != nil && status.Code(err) != codes.PermissionDenied {
				t.Errorf("%s, in flight at the kill, is broken: %v", name, err)
			}
		}
	}
	out, _, code := d2.grpcurl(t, mintAuditor(t, d2, admin), "credvault.v1.AuditService/VerifyAuditLog", ``)
	if code != 0 || !strings.Contains(out, `"ok": true`) {
		t.Errorf("audit chain after kill -9: %s", out)
	}
	d2.stop(t)
	if out, err := exec.Command(builtBinary(t, "credvaultd"), "audit", "verify", "--data-dir", dir).CombinedOutput(); err != nil {
		t.Errorf("audit verify after kill -9: %v %s", err, out)
	}
	t.Logf("%d operations, %d credentials checked after kill -9, 0 lost", ops, checked)
}

func mintAuditor(t *testing.T, d *daemon, admin string) string {
	t.Helper()
	m := d.mustGRPC(t, admin, "credvault.v1.CallerService/CreateCaller", `{"caller_id": "auditor-x", "caller": {"roles": ["ROLE_AUDITOR"]}}`)
	return m["token"].(string)
}
