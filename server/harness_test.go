package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"

	"github.com/credvault/credvault/authtypes"
	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/server"
	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/boltstore"
	"github.com/credvault/credvault/vault/keyprovider/localkey"
)

// syncBuffer is a log sink the test can read while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv is a real server (bbolt in a temp dir, the local key provider)
// reached in process over bufconn.
type testEnv struct {
	conn          *grpc.ClientConn
	adminToken    string
	resolverToken string // of callers/app, a resolver
	logs          *syncBuffer
	dbPath        string
	vault         *vault.Vault
	srv           *server.Server

	credentials credvaultv1.CredentialServiceClient
	resolver    credvaultv1.ResolverServiceClient
}

// envConfig is what an envOption may change.
type envConfig struct {
	server.Config
	// Listener, when set, also serves the server on a real socket (TLS tests).
	Listener net.Listener
}

// envOption changes the config of a testEnv.
type envOption func(*envConfig)

func newTestEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	dir := t.TempDir()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	keys, err := localkey.Open(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, boltstore.FileName)
	store, err := boltstore.Open(dbPath, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := vault.New(ctx, vault.Config{Store: store, Keys: keys, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	token := vault.NewToken()
	if _, err := v.BootstrapAdmin(ctx, token); err != nil {
		t.Fatal(err)
	}
	_, resolverToken, err := v.CreateCaller(ctx, &vault.Caller{Name: "callers/app", Roles: []vault.Role{vault.RoleResolver}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := envConfig{Config: server.Config{Vault: v, Logger: log, LogPayloads: true, AuditJournalFailure: store.AuditJournalFailure}}
	for _, o := range opts {
		o(&cfg)
	}
	srv := server.New(cfg.Config)
	if cfg.Listener != nil {
		go srv.GRPC().Serve(cfg.Listener)
	}
	lis := bufconn.Listen(1 << 20)
	go srv.GRPC().Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(8<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Shutdown(context.Background())
		if err := store.Close(); err != nil {
			t.Errorf("closing store: %v", err)
		}
	})
	return &testEnv{
		conn: conn, adminToken: token, resolverToken: resolverToken, logs: logs, srv: srv, dbPath: dbPath, vault: v,
		credentials: credvaultv1.NewCredentialServiceClient(conn),
		resolver:    credvaultv1.NewResolverServiceClient(conn),
	}
}

// as returns ctx carrying token as the caller's bearer token.
func as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

func (e *testEnv) admin() context.Context { return as(e.adminToken) }

func (e *testEnv) app() context.Context { return as(e.resolverToken) }

// dbBytes is everything the store has written: the bbolt file and its
// audit journal.
func (e *testEnv) dbBytes(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	journal, err := os.ReadFile(e.dbPath + boltstore.JournalSuffix)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, journal...)
}

// apiKeyDomain is an API-key credential readable by callers/app, for tests
// that set up through the vault directly.
func apiKeyDomain(name, key string) (*vault.Credential, authtypes.Secret) {
	return &vault.Credential{Name: name, Type: authtypes.TypeAPIKey, AllowedCallers: []string{"callers/app"}},
		authtypes.Secret{APIKey: &authtypes.APIKeySecret{Key: key}}
}
