package awskms_test

import (
	"bufio"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/keyprovider/awskms"
	"github.com/credvault/credvault/vault/keyprovider/awskms/awskmstest"
	"github.com/credvault/credvault/vault/vaulttest"
)

// startFake runs the KMS fake and returns it with a real SDK client
// pointed at it.
func startFake(t *testing.T) (*awskmstest.Fake, *kms.Client) {
	t.Helper()
	f, err := awskmstest.New("")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	client := kms.New(kms.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(f.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	}, awskms.Configure)
	return f, client
}

func TestConformance(t *testing.T) {
	vaulttest.TestKeyProvider(t, func(t *testing.T) vault.KeyProvider {
		f, client := startFake(t)
		return awskms.NewWithClient(client, f.CreateKey())
	})
}

var encCtx = map[string]string{"credential": "credentials/a", "version": "1"}

func TestAWSErrorSemantics(t *testing.T) {
	ctx := context.Background()
	f, client := startFake(t)
	id := f.CreateKey()
	f.AddAlias("alias/credvault", id)
	p := awskms.NewWithClient(client, "alias/credvault")
	dk, err := p.GenerateDataKey(ctx, encCtx)
	if err != nil {
		t.Fatal(err)
	}

	// A blob of another key, unwrapped naming this key: IncorrectKeyException.
	other := awskms.NewWithClient(client, f.CreateKey())
	otherKey, _ := other.GenerateDataKey(ctx, encCtx)
	if _, err := p.UnwrapKey(ctx, otherKey.Wrapped, encCtx); !errors.Is(err, vault.ErrKeyRejected) || !strings.Contains(err.Error(), "IncorrectKeyException") {
		t.Errorf("unwrap of another key's blob = %v, want IncorrectKeyException as ErrKeyRejected", err)
	}
	// Unknown key.
	if _, err := awskms.NewWithClient(client, "alias/nope").GenerateDataKey(ctx, encCtx); !errors.Is(err, vault.ErrKeyRejected) || !strings.Contains(err.Error(), "NotFoundException") {
		t.Errorf("unknown alias = %v, want NotFoundException as ErrKeyRejected", err)
	}
	// Throttled twice: the SDK retries and succeeds.
	before := f.Calls("Decrypt")
	f.Throttle(2)
	if _, err := p.UnwrapKey(ctx, dk.Wrapped, encCtx); err != nil {
		t.Errorf("unwrap after 2 throttles = %v, want the SDK's retries to succeed", err)
	}
	if n := f.Calls("Decrypt") - before; n != 3 {
		t.Errorf("throttled twice: %d Decrypt calls, want 3", n)
	}
	// Throttled forever: transient.
	f.Throttle(-1)
	if _, err := p.UnwrapKey(ctx, dk.Wrapped, encCtx); !errors.Is(err, vault.ErrKeyUnavailable) {
		t.Errorf("unwrap while throttled = %v, want ErrKeyUnavailable", err)
	}
	f.Throttle(0)
	// Disabled key.
	f.SetEnabled(id, false)
	if _, err := p.UnwrapKey(ctx, dk.Wrapped, encCtx); !errors.Is(err, vault.ErrKeyRejected) || !strings.Contains(err.Error(), "DisabledException") {
		t.Errorf("unwrap with a disabled key = %v, want DisabledException as ErrKeyRejected", err)
	}
	f.SetEnabled(id, true)
	// Pending deletion.
	f.ScheduleDeletion(id)
	if _, err := p.GenerateDataKey(ctx, encCtx); !errors.Is(err, vault.ErrKeyRejected) || !strings.Contains(err.Error(), "KMSInvalidStateException") {
		t.Errorf("generate with a key pending deletion = %v, want KMSInvalidStateException", err)
	}
}

func TestOutageFailsFast(t *testing.T) {
	ctx := context.Background()
	f, client := startFake(t)
	p := awskms.NewWithClient(client, f.CreateKey())
	dk, err := p.GenerateDataKey(ctx, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	f.Stop()
	start := time.Now()
	_, err = p.UnwrapKey(ctx, dk.Wrapped, encCtx)
	if !errors.Is(err, vault.ErrKeyUnavailable) {
		t.Errorf("unwrap with KMS down = %v, want ErrKeyUnavailable", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("unwrap with KMS down took %v", d)
	}
	// Slow KMS: bounded by the caller's deadline.
	f2, client2 := startFake(t)
	p2 := awskms.NewWithClient(client2, f2.CreateKey())
	f2.SetDelay(3 * time.Second)
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := p2.GenerateDataKey(dctx, encCtx); !errors.Is(err, vault.ErrKeyUnavailable) {
		t.Errorf("generate past the deadline = %v, want ErrKeyUnavailable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the caller's deadline was not honoured: %v", d)
	}
}

func TestReWrapToAnotherKey(t *testing.T) {
	ctx := context.Background()
	f, client := startFake(t)
	oldID, newID := f.CreateKey(), f.CreateKey()
	oldP, newP := awskms.NewWithClient(client, oldID), awskms.NewWithClient(client, newID)
	dk, _ := oldP.GenerateDataKey(ctx, encCtx)
	rewrapped, err := oldP.ReWrap(ctx, dk.Wrapped, encCtx, newID)
	if err != nil {
		t.Fatal(err)
	}
	f.SetEnabled(oldID, false)
	got, err := newP.UnwrapKey(ctx, rewrapped, encCtx)
	if err != nil || string(got) != string(dk.Plaintext) {
		t.Fatalf("unwrap after rewrap with the old key disabled = %v", err)
	}
	if calls := newP.Calls(); calls["Decrypt"] != 1 {
		t.Errorf("Calls() = %v", calls)
	}
}

// TestFakeAsProcess runs cmd/kmsfake and reaches it through the standard
// AWS environment only, as credvaultd does.
func TestFakeAsProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kmsfake")
	if out, err := exec.Command("go", "build", "-o", bin, "../../../cmd/kmsfake").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--state", filepath.Join(t.TempDir(), "state.json"))
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	fields := strings.Fields(line)
	if err != nil || len(fields) != 3 || fields[0] != "ready" {
		t.Fatalf("ready line = %q, %v", line, err)
	}
	t.Setenv("AWS_ENDPOINT_URL_KMS", fields[1])
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	p, err := awskms.New(context.Background(), "alias/credvault")
	if err != nil {
		t.Fatal(err)
	}
	dk, err := p.GenerateDataKey(context.Background(), encCtx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p.UnwrapKey(context.Background(), dk.Wrapped, encCtx); err != nil || string(got) != string(dk.Plaintext) {
		t.Fatalf("round trip through the process = %v", err)
	}
}
