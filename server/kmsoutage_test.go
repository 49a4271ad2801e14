package server_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	credsinsecure "google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/server"
	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/boltstore"
	"github.com/credvault/credvault/vault/keyprovider/awskms"
	"github.com/credvault/credvault/vault/keyprovider/awskms/awskmstest"
)

func reason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei.GetReason()
		}
	}
	return ""
}

// TestKMSOutage runs the vault on the awskms provider (real SDK) against
// the KMS fake and stops the fake: resolves whose data key is cached keep
// working; the others fail fast with UNAVAILABLE + KMS_UNAVAILABLE; writes
// fail the same way and leave nothing behind; everything recovers by itself
// when KMS is back.
func TestKMSOutage(t *testing.T) {
	fake, err := awskmstest.New("")
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	addr := fake.Addr()
	t.Cleanup(fake.Stop)
	fake.AddAlias("alias/credvault", fake.CreateKey())
	client := kms.New(kms.Options{Region: "us-east-1", BaseEndpoint: aws.String(fake.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("x", "x", "")}, awskms.Configure)
	keys := awskms.NewWithClient(client, "alias/credvault")
	ctx := context.Background()
	dir := t.TempDir()
	store, err := boltstore.Open(filepath.Join(dir, boltstore.FileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	// Two credentials written by an earlier process: this vault's cache is cold.
	seed, err := vault.New(ctx, vault.Config{Store: store, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"warm", "cold"} {
		c, s := apiKeyDomain("credentials/"+id, "key-"+id)
		if _, err := seed.CreateCredential(ctx, c, s); err != nil {
			t.Fatal(err)
		}
	}
	_, appToken, _ := seed.CreateCaller(ctx, &vault.Caller{Name: "callers/app", Roles: []vault.Role{vault.RoleResolver}})
	adminToken := vault.NewToken()
	seed.BootstrapAdmin(ctx, adminToken)

	v, err := vault.New(ctx, vault.Config{Store: store, Keys: keys, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Vault: v, Logger: slog.New(slog.DiscardHandler)})
	lis := bufconn.Listen(1 << 20)
	go srv.GRPC().Serve(lis)
	t.Cleanup(func() { srv.Shutdown(ctx) })
	conn, _ := grpc.NewClient("passthrough:///x", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(credsinsecure.NewCredentials()))
	t.Cleanup(func() { conn.Close() })
	resolver := credvaultv1.NewResolverServiceClient(conn)
	creds := credvaultv1.NewCredentialServiceClient(conn)
	resolve := func(id string) error {
		_, err := resolver.ResolveCredential(as(appToken), &credvaultv1.ResolveCredentialRequest{Name: "credentials/" + id})
		return err
	}
	if err := resolve("warm"); err != nil {
		t.Fatal(err)
	}

	fake.Stop() // KMS outage
	if err := resolve("warm"); err != nil {
		t.Errorf("resolve with a cached data key during the outage = %v", err)
	}
	start := time.Now()
	err = resolve("cold")
	if status.Code(err) != codes.Unavailable || reason(err) != server.ReasonKMSUnavailable {
		t.Errorf("resolve needing KMS during the outage = %v (reason %q), want UNAVAILABLE + KMS_UNAVAILABLE", err, reason(err))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the failing resolve took %v; it must fail fast", d)
	}
	_, err = creds.CreateCredential(as(adminToken), &credvaultv1.CreateCredentialRequest{CredentialId: "during",
		Credential: apiKeyCred(), Secret: apiKeySecret("k")})
	if status.Code(err) != codes.Unavailable || reason(err) != server.ReasonKMSUnavailable {
		t.Errorf("create during the outage = %v, want UNAVAILABLE + KMS_UNAVAILABLE", err)
	}
	if _, err := v.GetCredential(ctx, "credentials/during"); err == nil {
		t.Error("a failed create left a record")
	}

	if err := fake.Start(addr); err != nil { // KMS is back, same endpoint
		t.Fatal(err)
	}
	if err := resolve("cold"); err != nil {
		t.Errorf("resolve after KMS came back = %v", err)
	}
	if _, err := creds.CreateCredential(as(adminToken), &credvaultv1.CreateCredentialRequest{CredentialId: "after",
		Credential: apiKeyCred(), Secret: apiKeySecret("k")}); err != nil {
		t.Errorf("create after KMS came back = %v", err)
	}
}
