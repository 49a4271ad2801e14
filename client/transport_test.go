package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/credvault/credvault/authtypes"
	"github.com/credvault/credvault/client"
	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/server"
	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/boltstore"
	"github.com/credvault/credvault/vault/keyprovider/localkey"
)

// countingResolver counts resolves reaching the real vault.
type countingResolver struct {
	credvaultv1.ResolverServiceClient
	calls, forced atomic.Int64
}

func (c *countingResolver) ResolveCredential(ctx context.Context, in *credvaultv1.ResolveCredentialRequest, opts ...grpc.CallOption) (*credvaultv1.ResolveCredentialResponse, error) {
	c.calls.Add(1)
	if in.GetForceRefresh() {
		c.forced.Add(1)
	}
	return c.ResolverServiceClient.ResolveCredential(ctx, in, opts...)
}

// newVault runs a real credvault server in process with one credential
// (placement given) and returns a resolver client for callers/app.
func newVault(t *testing.T, typ authtypes.Type, placement []authtypes.ParameterTemplate, secret authtypes.Secret) *countingResolver {
	t.Helper()
	dir := t.TempDir()
	keys, err := localkey.Open(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := boltstore.Open(filepath.Join(dir, boltstore.FileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := vault.New(ctx, vault.Config{Store: store, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.CreateCredential(ctx, &vault.Credential{Name: "credentials/target", Type: typ, Placement: placement,
		AllowedCallers: []string{"callers/app"}}, secret); err != nil {
		t.Fatal(err)
	}
	_, token, err := v.CreateCaller(ctx, &vault.Caller{Name: "callers/app", Roles: []vault.Role{vault.RoleResolver}})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Vault: v})
	lis := bufconn.Listen(1 << 20)
	go srv.GRPC().Serve(lis)
	conn, err := grpc.NewClient("passthrough:///vault",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); srv.Shutdown(context.Background()); store.Close() })
	return &countingResolver{ResolverServiceClient: credvaultv1.NewResolverServiceClient(conn)}
}

type seen struct {
	header, query, path, contentType, body string
}

func target(t *testing.T, status func(n int) int) (*httptest.Server, chan seen) {
	ch := make(chan seen, 100)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- seen{r.Header.Get("X-Key"), r.URL.RawQuery, r.URL.Path, r.Header.Get("Content-Type"), string(b)}
		w.WriteHeader(status(int(n.Add(1))))
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func ok(int) int { return 200 }

func TestPlacements(t *testing.T) {
	tests := []struct {
		name        string
		placement   authtypes.ParameterTemplate
		contentType string
		body        string
		check       func(s seen) bool
		wantErr     error
	}{
		{"header", authtypes.ParameterTemplate{Location: authtypes.LocationHeader, Name: "X-Key", ValueTemplate: "{secret}"}, "", "",
			func(s seen) bool { return s.header == "s3cret" }, nil},
		{"query", authtypes.ParameterTemplate{Location: authtypes.LocationQuery, Name: "appid", ValueTemplate: "{secret}"}, "", "",
			func(s seen) bool {
				return strings.Contains(s.query, "appid=s3cret") && strings.Contains(s.query, "city=Oslo")
			}, nil},
		{"path", authtypes.ParameterTemplate{Location: authtypes.LocationPath, Name: "tenant", ValueTemplate: "{secret}"}, "", "",
			func(s seen) bool { return s.path == "/t/s3cret/items" }, nil},
		{"json body", authtypes.ParameterTemplate{Location: authtypes.LocationBody, Name: "key", ValueTemplate: "{secret}"}, "application/json", `{"a":1}`,
			func(s seen) bool {
				var m map[string]any
				return json.Unmarshal([]byte(s.body), &m) == nil && m["key"] == "s3cret" && m["a"] == 1.0
			}, nil},
		{"form body", authtypes.ParameterTemplate{Location: authtypes.LocationBody, Name: "key", ValueTemplate: "{secret}"}, "application/x-www-form-urlencoded", "a=1",
			func(s seen) bool {
				v, _ := url.ParseQuery(s.body)
				return v.Get("key") == "s3cret" && v.Get("a") == "1"
			}, nil},
		{"text body", authtypes.ParameterTemplate{Location: authtypes.LocationBody, Name: "key", ValueTemplate: "{secret}"}, "text/plain", "hello",
			nil, client.ErrBodyNotMergeable},
		{"json array body", authtypes.ParameterTemplate{Location: authtypes.LocationBody, Name: "key", ValueTemplate: "{secret}"}, "application/json", "[1]",
			nil, client.ErrBodyNotMergeable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newVault(t, authtypes.TypeSecret, []authtypes.ParameterTemplate{tc.placement}, authtypes.Secret{Generic: &authtypes.GenericSecret{Value: "s3cret"}})
			srv, ch := target(t, ok)
			hc := &http.Client{Transport: &client.Transport{Resolver: r, Credential: "credentials/target"}}
			var body io.Reader
			method := http.MethodGet
			if tc.body != "" {
				body, method = strings.NewReader(tc.body), http.MethodPost
			}
			req, _ := http.NewRequest(method, srv.URL+"/t/{tenant}/items?city=Oslo", body)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := hc.Do(req)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Do = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if s := <-ch; !tc.check(s) {
				t.Errorf("the target saw %+v", s)
			}
			if req.Header.Get("X-Key") != "" || strings.Contains(req.URL.RawQuery, "appid") {
				t.Error("the caller's request was modified")
			}
		})
	}
}

func TestCachingAndSharing(t *testing.T) {
	r := newVault(t, authtypes.TypeAPIKey, []authtypes.ParameterTemplate{{Location: authtypes.LocationHeader, Name: "X-Key", ValueTemplate: "{api_key}"}},
		authtypes.Secret{APIKey: &authtypes.APIKeySecret{Key: "k"}})
	srv, ch := target(t, ok)
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	hc := &http.Client{Transport: &client.Transport{Resolver: r, Credential: "credentials/target", Now: clock}}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := hc.Get(srv.URL)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			<-ch
		}()
	}
	wg.Wait()
	if n := r.calls.Load(); n != 1 {
		t.Errorf("20 concurrent requests made %d resolves, want 1", n)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute) // past expire_time (60s for static secrets)
	mu.Unlock()
	resp, _ := hc.Get(srv.URL)
	resp.Body.Close()
	<-ch
	if n := r.calls.Load(); n != 2 {
		t.Errorf("after expiry: %d resolves, want 2", n)
	}
}

func TestRetryOnceAfter401(t *testing.T) {
	r := newVault(t, authtypes.TypeAPIKey, []authtypes.ParameterTemplate{{Location: authtypes.LocationHeader, Name: "X-Key", ValueTemplate: "{api_key}"}},
		authtypes.Secret{APIKey: &authtypes.APIKeySecret{Key: "k"}})
	srv, ch := target(t, func(n int) int { return 401 }) // always refuses
	hc := &http.Client{Transport: &client.Transport{Resolver: r, Credential: "credentials/target"}}
	resp, err := hc.Post(srv.URL, "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || r.forced.Load() != 1 || len(ch) != 2 {
		t.Errorf("status %d, forced resolves %d, target requests %d; want 401, 1, 2 (exactly one retry)", resp.StatusCode, r.forced.Load(), len(ch))
	}
	first, second := <-ch, <-ch
	if first.body != `{"a":1}` || second.body != `{"a":1}` {
		t.Errorf("bodies %q and %q; the retry must resend the body", first.body, second.body)
	}
}
