package e2e

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// startKMSFake runs cmd/kmsfake and returns the standard AWS environment
// that points an SDK at it.
func startKMSFake(t *testing.T, statePath string) []string {
	t.Helper()
	cmd := exec.Command(builtBinary(t, "kmsfake"), "--state", statePath)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 3 || f[0] != "ready" {
		t.Fatalf("kmsfake ready line = %q, %v", line, err)
	}
	return []string{
		"AWS_ENDPOINT_URL_KMS=" + f[1], "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true",
	}
}

// TestAWSKMSKeyProvider runs credvaultd with the awskms provider against
// the KMS fake process, configured only through the standard AWS
// environment (and CREDVAULT_ variables for our own flags): create,
// resolve, restart, resolve again.
func TestAWSKMSKeyProvider(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(t.TempDir(), "kms.json")
	env := append(startKMSFake(t, state), "CREDVAULT_KEY_PROVIDER=awskms", "CREDVAULT_KMS_KEY_ID=alias/credvault")
	d := startDaemon(t, dir, env)
	if !strings.Contains(d.logs.String(), `"key_provider":"awskms:alias/credvault"`) {
		t.Fatalf("daemon is not using KMS:\n%s", d.logs)
	}
	admin := d.adminToken(t)
	if _, stderr, code := d.grpcurl(t, admin, "credvault.v1.CredentialService/CreateCredential",
		`{"credential_id": "k", "credential": {"type": "CREDENTIAL_TYPE_API_KEY", "allowed_callers": ["callers/app"]}, "secret": {"api_key": {"key": "kms-sealed"}}}`); code != 0 {
		t.Fatalf("create: %s", stderr)
	}
	app := mintResolver(t, d, admin, "app")
	resolve := func(d *daemon) {
		t.Helper()
		out, stderr, code := d.grpcurl(t, app, "credvault.v1.ResolverService/ResolveCredential", `{"name": "credentials/k"}`)
		if code != 0 || !strings.Contains(out, `"kms-sealed"`) {
			t.Fatalf("resolve: exit %d %s %s", code, out, stderr)
		}
	}
	resolve(d)
	d.stop(t)
	// A restarted daemon, cold cache: it must unwrap through KMS again.
	d2 := startDaemon(t, dir, env)
	resolve(d2)
	d2.stop(t)
	// The same data dir with the local provider is refused: wrong key.
	cmd := exec.Command(builtBinary(t, "credvaultd"), "serve", "--data-dir", dir, "--grpc-addr", freeAddr(t), "--http-addr", freeAddr(t))
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "created with key provider") {
		t.Errorf("serve with the local provider on a KMS vault: %v\n%s", err, out)
	}
}
