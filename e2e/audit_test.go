package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestCallersAndAuditTrail is the auditor's story with grpcurl: an admin
// mints a resolver and an auditor; the resolver resolves its credential and
// is denied another's; the auditor lists the events and verifies the chain.
// Then one byte of one stored event is changed with bbolt directly, and both
// VerifyAuditLog and `credvaultd audit verify` name that event.
func TestCallersAndAuditTrail(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, nil)
	admin := d.adminToken(t)
	mustCall := func(token, method, body string) string {
		t.Helper()
		out, stderr, code := d.grpcurl(t, token, method, body)
		if code != 0 {
			t.Fatalf("%s: exit %d %s", method, code, stderr)
		}
		return out
	}
	app := mintResolver(t, d, admin, "billing")
	var auditorResp struct{ Token string }
	json.Unmarshal([]byte(mustCall(admin, "credvault.v1.CallerService/CreateCaller", `{"caller_id": "auditor", "caller": {"roles": ["ROLE_AUDITOR"]}}`)), &auditorResp)
	auditor := auditorResp.Token
	mustCall(admin, "credvault.v1.CredentialService/CreateCredential",
		`{"credential_id": "mine", "credential": {"type": "CREDENTIAL_TYPE_BEARER", "allowed_callers": ["callers/billing"]}, "secret": {"bearer": {"token": "SECRET-mine"}}}`)
	mustCall(admin, "credvault.v1.CredentialService/CreateCredential",
		`{"credential_id": "theirs", "credential": {"type": "CREDENTIAL_TYPE_BEARER", "allowed_callers": ["callers/other"]}, "secret": {"bearer": {"token": "SECRET-theirs"}}}`)
	if out := mustCall(app, "credvault.v1.ResolverService/ResolveCredential", `{"name": "credentials/mine"}`); !strings.Contains(out, "Bearer SECRET-mine") {
		t.Fatalf("resolve mine = %s", out)
	}
	if _, stderr, code := d.grpcurl(t, app, "credvault.v1.ResolverService/ResolveCredential", `{"name": "credentials/theirs"}`); code != 64+7 {
		t.Fatalf("resolve theirs: exit %d %s, want PermissionDenied", code, stderr)
	}
	// The resolver cannot read the audit log.
	if _, _, code := d.grpcurl(t, app, "credvault.v1.AuditService/ListAuditEvents", `{}`); code != 64+7 {
		t.Fatalf("resolver lists audit: exit %d, want PermissionDenied", code)
	}
	out := mustCall(auditor, "credvault.v1.AuditService/ListAuditEvents", `{"page_size": 1000, "filter": "caller = \"callers/billing\""}`)
	var list struct {
		Events []struct {
			Sequence string
			Method   string
			Resource string
			Outcome  string
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, e := range list.Events {
		summary = append(summary, fmt.Sprintf("%s %s %s", strings.TrimPrefix(e.Method, "/credvault.v1."), e.Resource, e.Outcome))
	}
	wantSummary := []string{
		"ResolverService/ResolveCredential credentials/mine OUTCOME_SUCCESS",
		"ResolverService/ResolveCredential credentials/theirs OUTCOME_DENIED",
		"AuditService/ListAuditEvents  OUTCOME_DENIED",
	}
	if strings.Join(summary, "\n") != strings.Join(wantSummary, "\n") {
		t.Errorf("billing's audit events:\n%s\nwant:\n%s", strings.Join(summary, "\n"), strings.Join(wantSummary, "\n"))
	}
	all := mustCall(auditor, "credvault.v1.AuditService/ListAuditEvents", `{"page_size": 1000}`)
	for _, secret := range []string{"SECRET-mine", "SECRET-theirs", app, auditor, admin} {
		if strings.Contains(all, secret) {
			t.Errorf("audit events contain a secret or token (%.12s…)", secret)
		}
	}
	if out := mustCall(auditor, "credvault.v1.AuditService/VerifyAuditLog", ``); !strings.Contains(out, `"ok": true`) {
		t.Fatalf("VerifyAuditLog before tampering = %s", out)
	}
	d.stop(t)

	// Offline verification agrees.
	cli := exec.Command(builtBinary(t, "credvaultd"), "audit", "verify", "--data-dir", dir)
	if out, err := cli.CombinedOutput(); err != nil || !strings.Contains(string(out), "audit log ok") {
		t.Fatalf("audit verify before tampering: %v\n%s", err, out)
	}

	// Change one byte of the event that recorded the denied resolve.
	denied := list.Events[1].Sequence
	var seq uint64
	fmt.Sscan(denied, &seq)
	db, err := bolt.Open(filepath.Join(dir, "credvault.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		v := bytes.Clone(b.Get(k[:]))
		i := bytes.Index(v, []byte("theirs"))
		if i < 0 {
			return fmt.Errorf("event %d does not name credentials/theirs: %s", seq, v)
		}
		v[i] = 'T'
		return b.Put(k[:], v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	cli = exec.Command(builtBinary(t, "credvaultd"), "audit", "verify", "--data-dir", dir)
	out2, err := cli.CombinedOutput()
	if err == nil || !strings.Contains(string(out2), fmt.Sprintf("sequence %d", seq)) {
		t.Errorf("audit verify after tampering with event %d: %v\n%s", seq, err, out2)
	}
	d2 := startDaemon(t, dir, nil)
	out3, _, _ := d2.grpcurl(t, auditor, "credvault.v1.AuditService/VerifyAuditLog", ``)
	if !strings.Contains(out3, fmt.Sprintf(`"firstBadSequence": "%d"`, seq)) || strings.Contains(out3, `"ok": true`) {
		t.Errorf("VerifyAuditLog after tampering with event %d = %s", seq, out3)
	}
}
