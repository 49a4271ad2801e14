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

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
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
	d.kill(t)
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

// TestKill9DuringResolves kills the daemon with SIGKILL while resolves
// stream in. Each resolve's audit event is durable before the resolve is
// answered (most of them in the audit journal, not yet in the database), so
// after the kill the offline verifier counts them, and after a restart the
// log lists every acknowledged resolve's request id and verifies. (A kill
// keeps the page cache: this is "answered means written and replayed";
// what a power loss before a sync would do is simulated in
// vault/boltstore's journal tests.)
func TestKill9DuringResolves(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, nil)
	admin := d.adminToken(t)
	app := mintResolver(t, d, admin, "app")
	d.mustGRPC(t, admin, "credvault.v1.CredentialService/CreateCredential",
		`{"credential_id": "k", "credential": {"type": "CREDENTIAL_TYPE_API_KEY", "allowed_callers": ["callers/app"]}, "secret": {"api_key": {"key": "v"}}}`)
	resolver := credvaultv1.NewResolverServiceClient(d.dial(t))
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		wg    sync.WaitGroup
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var md metadata.MD
				_, err := resolver.ResolveCredential(withToken(app), &credvaultv1.ResolveCredentialRequest{Name: "credentials/k"}, grpc.Header(&md))
				if err != nil {
					return // the daemon died
				}
				ids := md.Get("x-request-id")
				if len(ids) != 1 {
					t.Errorf("a resolve answered without one x-request-id: %v", md)
					return
				}
				mu.Lock()
				acked[ids[0]] = true
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	d.kill(t)
	wg.Wait()
	if len(acked) < 100 {
		t.Fatalf("only %d resolves before the kill; the test did not load the vault", len(acked))
	}

	// The kill left the journal, holding the events not yet folded.
	if _, err := os.Stat(filepath.Join(dir, "credvault.db.audit-journal")); err != nil {
		t.Fatalf("no audit journal after kill -9: %v", err)
	}
	out, err := exec.Command(builtBinary(t, "credvaultd"), "audit", "verify", "--data-dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("audit verify after kill -9: %v %s", err, out)
	}
	var verified int
	if _, err := fmt.Sscanf(string(out), "audit log ok: %d events verified", &verified); err != nil || verified < len(acked) {
		t.Fatalf("offline audit verify after kill -9 counts %d events (%v), fewer than the %d resolves answered: %s", verified, err, len(acked), out)
	}
	d2 := startDaemon(t, dir, nil)
	audit := credvaultv1.NewAuditServiceClient(d2.dial(t))
	auditor := mintAuditor(t, d2, admin)
	actx := withToken(auditor)
	logged := map[string]bool{}
	for token := ""; ; {
		page, err := audit.ListAuditEvents(actx, &credvaultv1.ListAuditEventsRequest{PageSize: 1000, PageToken: token,
			Filter: `method = "/credvault.v1.ResolverService/ResolveCredential"`})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.GetEvents() {
			logged[e.GetRequestId()] = true
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	for id := range acked {
		if !logged[id] {
			t.Fatalf("resolve %s was answered before the kill but is not in the audit log (%d of %d logged)", id, len(logged), len(acked))
		}
	}
	out2, _, code := d2.grpcurl(t, auditor, "credvault.v1.AuditService/VerifyAuditLog", ``)
	if code != 0 || !strings.Contains(out2, `"ok": true`) {
		t.Errorf("audit chain after kill -9: %s", out2)
	}
	t.Logf("%d resolves answered before kill -9, all in the log; offline verify: %q", len(acked), out)
}
