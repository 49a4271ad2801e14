package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// readmeBlock returns the shell block that follows marker in README.md.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), marker)
	if !ok {
		t.Fatalf("README.md has no %q block", marker)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatalf("no ```sh block after %q", marker)
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("unterminated block after %q", marker)
	}
	return block
}

// TestREADMEWalkthrough runs the README's grpcurl walkthrough exactly as an
// admin pastes it (only the address differs: the daemon runs on a free
// port), from a directory laid out like the repository root.
func TestREADMEWalkthrough(t *testing.T) {
	d := startDaemon(t, t.TempDir(), nil)
	script := readmeBlock(t, "<!-- e2e:walkthrough")
	script = strings.ReplaceAll(script, "127.0.0.1:7443", d.grpcAddr)

	root := t.TempDir()
	repoTools, _ := filepath.Abs("../.tools")
	tool(t, "grpcurl") // fail clearly when it is not installed
	for link, target := range map[string]string{"data": d.dataDir, ".tools": repoTools} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README walkthrough failed: %v\n%s", err, out)
	}
	for _, want := range []string{`"value": "k-123"`, `"value": "Basic c3ZjLWJpbGxpbmc6aHVudGVyMg=="`, `"fingerprint"`, `"version": "2"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("walkthrough output lacks %s:\n%s", want, out)
		}
	}
	// Secrets are only in resolve output: the Get/List/Create/Rotate answers
	// of the walkthrough hold none of the other secrets.
	for _, secret := range []string{"ghp-example", "whsec-example", "cs-example", "rt-example", "at-example", "k-456"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("walkthrough output shows secret %s", secret)
		}
	}
}

// TestGRPCurlAdmin drives each RPC with grpcurl and checks the answers.
func TestGRPCurlAdmin(t *testing.T) {
	d := startDaemon(t, t.TempDir(), nil)
	tok := d.adminToken(t)
	call := func(method, body string) map[string]any {
		t.Helper()
		out, stderr, code := d.grpcurl(t, tok, method, body)
		if code != 0 {
			t.Fatalf("grpcurl %s: exit %d\n%s", method, code, stderr)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("grpcurl %s: %v\n%s", method, err, out)
		}
		return m
	}
	const cs = "credvault.v1.CredentialService/"
	minted := call("credvault.v1.CallerService/CreateCaller", `{"caller_id": "app", "caller": {"roles": ["ROLE_RESOLVER"]}}`)
	appTok, _ := minted["token"].(string)
	if !strings.HasPrefix(appTok, "cvt_") {
		t.Fatalf("CreateCaller token = %q", appTok)
	}
	types := map[string]string{
		"a": `{"credential_id": "a", "credential": {"type": "CREDENTIAL_TYPE_API_KEY", "allowed_callers": ["callers/app"]}, "secret": {"api_key": {"key": "ka"}}}`,
		"b": `{"credential_id": "b", "credential": {"type": "CREDENTIAL_TYPE_BEARER", "allowed_callers": ["callers/app"]}, "secret": {"bearer": {"token": "tb"}}}`,
		"c": `{"credential_id": "c", "credential": {"type": "CREDENTIAL_TYPE_BASIC", "allowed_callers": ["callers/app"]}, "secret": {"basic": {"username": "u", "password": "pc"}}}`,
		"d": `{"credential_id": "d", "credential": {"type": "CREDENTIAL_TYPE_SECRET", "placement": [{"location": "LOCATION_PATH", "name": "tenant", "value_template": "{secret}"}], "allowed_callers": ["callers/app"]}, "secret": {"secret": {"value": "sd"}}}`,
		"e": `{"credential_id": "e", "credential": {"type": "CREDENTIAL_TYPE_OAUTH2", "oauth2": {"grant_type": "GRANT_TYPE_REFRESH_TOKEN", "token_url": "https://idp.example/token", "client_id": "x"}, "allowed_callers": ["callers/app"]}, "secret": {"oauth2": {"access_token": "te", "refresh_token": "re"}}}`,
	}
	wantValue := map[string]string{"a": "ka", "b": "Bearer tb", "c": "Basic dTpwYw==", "d": "sd", "e": "Bearer te"}
	for id, body := range types {
		created := call(cs+"CreateCredential", body)
		if created["name"] != "credentials/"+id {
			t.Errorf("CreateCredential(%s) name = %v", id, created["name"])
		}
		got := call(cs+"GetCredential", `{"name": "credentials/`+id+`"}`)
		if got["etag"] != created["etag"] {
			t.Errorf("GetCredential(%s) etag %v != created %v", id, got["etag"], created["etag"])
		}
		out, stderr, code := d.grpcurl(t, appTok, "credvault.v1.ResolverService/ResolveCredential", `{"name": "credentials/`+id+`"}`)
		if code != 0 {
			t.Fatalf("ResolveCredential(%s): exit %d %s", id, code, stderr)
		}
		var r map[string]any
		_ = json.Unmarshal([]byte(out), &r)
		params, _ := r["parameters"].([]any)
		if len(params) != 1 || params[0].(map[string]any)["value"] != wantValue[id] {
			t.Errorf("ResolveCredential(%s) = %v, want value %q", id, r, wantValue[id])
		}
	}
	// The admin may not resolve (PERMISSION_DENIED, exit 64+7).
	if _, _, code := d.grpcurl(t, tok, "credvault.v1.ResolverService/ResolveCredential", `{"name": "credentials/a"}`); code != 64+7 {
		t.Errorf("admin resolve: exit %d, want 71", code)
	}
	list := call(cs+"ListCredentials", `{"page_size": 2}`)
	if n := len(list["credentials"].([]any)); n != 2 || list["nextPageToken"] == "" {
		t.Errorf("ListCredentials(page_size 2) = %d credentials, token %v", n, list["nextPageToken"])
	}
	rot := call(cs+"RotateCredentialSecret", `{"name": "credentials/a", "secret": {"api_key": {"key": "ka2"}}}`)
	if rot["secretStatus"].(map[string]any)["version"] != "2" {
		t.Errorf("RotateCredentialSecret version = %v", rot["secretStatus"])
	}
	call(cs+"DeleteCredential", `{"name": "credentials/a"}`)
	if _, stderr, code := d.grpcurl(t, tok, cs+"GetCredential", `{"name": "credentials/a"}`); code != 64+5 || !strings.Contains(stderr, "NotFound") {
		t.Errorf("GetCredential after delete: exit %d, %s; want NotFound (exit 69)", code, stderr)
	}
	// Bad input: INVALID_ARGUMENT (exit 64+3) with the field named.
	_, stderr, code := d.grpcurl(t, tok, cs+"CreateCredential", `{"credential_id": "x", "credential": {"type": "CREDENTIAL_TYPE_API_KEY"}, "secret": {"api_key": {"key": "a\r\nb"}}}`)
	if code != 64+3 || !strings.Contains(stderr, "placement") {
		t.Errorf("CRLF secret: exit %d, %s; want InvalidArgument naming the placement", code, stderr)
	}
	// No token, wrong token: UNAUTHENTICATED (exit 64+16). Health and
	// reflection are open.
	if _, _, code := d.grpcurl(t, "", cs+"ListCredentials", `{}`); code != 64+16 {
		t.Errorf("no token: exit %d, want 80", code)
	}
	if _, _, code := d.grpcurl(t, "cvt_nope", cs+"ListCredentials", `{}`); code != 64+16 {
		t.Errorf("wrong token: exit %d, want 80", code)
	}
	if out, _, code := d.grpcurl(t, "", "grpc.health.v1.Health/Check", ""); code != 0 || !strings.Contains(out, "SERVING") {
		t.Errorf("health check: exit %d, %s", code, out)
	}
	if out, _, code := d.grpcurl(t, "", "list", ""); code != 0 || !strings.Contains(out, "credvault.v1.CredentialService") {
		t.Errorf("reflection list: exit %d, %s", code, out)
	}
}

// TestRestartKeepsEverything: data acknowledged before a clean stop resolves
// after a restart with the same data dir (same key file, same admin token).
func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, dir, nil)
	tok := d.adminToken(t)
	if _, stderr, code := d.grpcurl(t, tok, "credvault.v1.CredentialService/CreateCredential",
		`{"credential_id": "keep", "credential": {"type": "CREDENTIAL_TYPE_API_KEY", "allowed_callers": ["callers/app"]}, "secret": {"api_key": {"key": "kept"}}}`); code != 0 {
		t.Fatalf("create: %s", stderr)
	}
	appTok := mintResolver(t, d, tok, "app")
	d.stop(t)
	if !strings.Contains(d.logs.String(), "credvaultd stopped cleanly") {
		t.Errorf("no clean-stop log line:\n%s", d.logs)
	}
	d2 := startDaemon(t, dir, nil)
	if d2.adminToken(t) != tok {
		t.Fatal("admin token changed across restart")
	}
	out, stderr, code := d2.grpcurl(t, appTok, "credvault.v1.ResolverService/ResolveCredential", `{"name": "credentials/keep"}`)
	if code != 0 || !strings.Contains(out, `"kept"`) {
		t.Fatalf("resolve after restart: exit %d\n%s%s", code, out, stderr)
	}
	if st, err := os.Stat(filepath.Join(dir, "admin.token")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("admin.token mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
}

// TestRefusesPublicListenWithoutTLS: a non-loopback address needs TLS or
// --insecure.
func TestRefusesPublicListenWithoutTLS(t *testing.T) {
	cmd := exec.Command(builtBinary(t, "credvaultd"), "serve", "--data-dir", t.TempDir(), "--grpc-addr", "0.0.0.0:0")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "without TLS") {
		t.Fatalf("serve on 0.0.0.0 without TLS: %v\n%s", err, out)
	}
}

// mintResolver creates a resolver caller with grpcurl and returns its token.
func mintResolver(t *testing.T, d *daemon, adminToken, id string) string {
	t.Helper()
	out, stderr, code := d.grpcurl(t, adminToken, "credvault.v1.CallerService/CreateCaller", `{"caller_id": "`+id+`", "caller": {"roles": ["ROLE_RESOLVER"]}}`)
	if code != 0 {
		t.Fatalf("CreateCaller: exit %d %s", code, stderr)
	}
	var m struct{ Token string }
	if err := json.Unmarshal([]byte(out), &m); err != nil || !strings.HasPrefix(m.Token, "cvt_") {
		t.Fatalf("CreateCaller output %q: %v", out, err)
	}
	return m.Token
}
