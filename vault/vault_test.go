package vault_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/credvault/credvault/authtypes"
	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/boltstore"
	"github.com/credvault/credvault/vault/vaulttest"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type env struct {
	v     *vault.Vault
	keys  *vaulttest.FakeKeys
	store *boltstore.Store
	clock *fakeClock
	admin *vault.Caller
	app   *vault.Caller // a resolver named in every credential apiKey makes
}

func newEnvB(b *testing.B) *env { return newEnv(b, vault.Config{}) }

func newEnv(t testing.TB, cfg vault.Config) *env {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), boltstore.FileName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	keys := vaulttest.NewFakeKeys()
	clock := &fakeClock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	cfg.Store, cfg.Keys, cfg.Clock = s, keys, clock
	v, err := vault.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	token := vault.NewToken()
	if _, err := v.BootstrapAdmin(context.Background(), token); err != nil {
		t.Fatal(err)
	}
	admin, err := v.Authenticate(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	app := &vault.Caller{Name: "callers/app", Roles: []vault.Role{vault.RoleResolver}}
	return &env{v: v, keys: keys, store: s, clock: clock, admin: admin, app: app}
}

func apiKey(name, key string) (*vault.Credential, authtypes.Secret) {
	return &vault.Credential{Name: name, Type: authtypes.TypeAPIKey, AllowedCallers: []string{"callers/app"}},
		authtypes.Secret{APIKey: &authtypes.APIKeySecret{Key: key}}
}

func TestCreateResolveRotate(t *testing.T) {
	e := newEnv(t, vault.Config{})
	ctx := context.Background()
	c, s := apiKey("credentials/weather", "k-123")
	c.Placement = []authtypes.ParameterTemplate{{Location: authtypes.LocationQuery, Name: "appid", ValueTemplate: "{api_key}"}}
	created, err := e.v.CreateCredential(ctx, c, s)
	if err != nil {
		t.Fatalf("CreateCredential = %v", err)
	}
	if created.Secret.Version != 1 || len(created.Secret.Fingerprint) != 16 || created.Etag() == "" {
		t.Fatalf("created = %+v", created.Secret)
	}
	r, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
	if err != nil {
		t.Fatalf("Resolve = %v", err)
	}
	want := authtypes.Parameter{Location: authtypes.LocationQuery, Name: "appid", Value: "k-123"}
	if len(r.Parameters) != 1 || r.Parameters[0] != want || r.Version != 1 {
		t.Fatalf("Resolve = %+v, want [%+v] version 1", r, want)
	}
	if !r.ExpireTime.Equal(e.clock.Now().Add(60 * time.Second)) {
		t.Errorf("ExpireTime = %v, want now + 60s", r.ExpireTime)
	}
	rotated, err := e.v.RotateCredentialSecret(ctx, c.Name, created.Etag(), authtypes.Secret{APIKey: &authtypes.APIKeySecret{Key: "k-456"}})
	if err != nil {
		t.Fatalf("RotateCredentialSecret = %v", err)
	}
	if rotated.Secret.Version != 2 || rotated.Secret.Fingerprint == created.Secret.Fingerprint || rotated.Etag() == created.Etag() {
		t.Fatalf("rotated = %+v", rotated.Secret)
	}
	r, err = e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
	if err != nil || r.Parameters[0].Value != "k-456" || r.Version != 2 {
		t.Fatalf("Resolve after rotation = %+v, %v", r, err)
	}
	// Same secret, same fingerprint.
	c2, s2 := apiKey("credentials/other", "k-456")
	other, err := e.v.CreateCredential(ctx, c2, s2)
	if err != nil {
		t.Fatal(err)
	}
	if other.Secret.Fingerprint != rotated.Secret.Fingerprint {
		t.Errorf("equal secrets have fingerprints %s and %s", other.Secret.Fingerprint, rotated.Secret.Fingerprint)
	}
}

// TestSteadyStateResolvesMakeNoKeyProviderCall checks the data-key cache:
// after a restart-like cold start, one unwrap, then none.
func TestSteadyStateResolvesMakeNoKeyProviderCall(t *testing.T) {
	e := newEnv(t, vault.Config{})
	ctx := context.Background()
	c, s := apiKey("credentials/a", "k")
	if _, err := e.v.CreateCredential(ctx, c, s); err != nil {
		t.Fatal(err)
	}
	before := e.keys.Unwraps.Load()
	for range 1000 {
		if _, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app}); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.keys.Unwraps.Load() - before; n != 0 {
		t.Errorf("1000 resolves after create made %d unwrap calls, want 0", n)
	}

	// A second vault on the same store starts cold: concurrent resolves
	// share one unwrap.
	v2, err := vault.New(ctx, vault.Config{Store: e.store, Keys: e.keys, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	before = e.keys.Unwraps.Load()
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := v2.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := e.keys.Unwraps.Load() - before; n < 1 || n > 2 {
		t.Errorf("50 concurrent cold resolves made %d unwrap calls, want 1", n)
	}
	// Past the cache's maximum age the key is unwrapped again.
	e.clock.Advance(2 * time.Hour)
	before = e.keys.Unwraps.Load()
	if _, err := v2.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app}); err != nil {
		t.Fatal(err)
	}
	if n := e.keys.Unwraps.Load() - before; n != 1 {
		t.Errorf("resolve past the cache age made %d unwrap calls, want 1", n)
	}
}

func TestKeyProviderOutage(t *testing.T) {
	e := newEnv(t, vault.Config{})
	ctx := context.Background()
	c, s := apiKey("credentials/cached", "k")
	if _, err := e.v.CreateCredential(ctx, c, s); err != nil {
		t.Fatal(err)
	}
	e.keys.Fail(vaulttest.ErrFakeOutage)
	// A cached key keeps working.
	if _, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app}); err != nil {
		t.Errorf("Resolve with a cached key during an outage = %v", err)
	}
	// Writes fail and leave nothing behind.
	c2, s2 := apiKey("credentials/new", "k")
	if _, err := e.v.CreateCredential(ctx, c2, s2); !errors.Is(err, vault.ErrKeyUnavailable) {
		t.Errorf("CreateCredential during an outage = %v, want ErrKeyUnavailable", err)
	}
	if _, err := e.v.GetCredential(ctx, c2.Name); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("after failed create: GetCredential = %v, want ErrNotFound", err)
	}
	if _, err := e.v.RotateCredentialSecret(ctx, c.Name, "", s2); !errors.Is(err, vault.ErrKeyUnavailable) {
		t.Errorf("Rotate during an outage = %v, want ErrKeyUnavailable", err)
	}
	if got, _ := e.v.GetCredential(ctx, c.Name); got.Secret.Version != 1 {
		t.Errorf("after failed rotation: version %d, want 1", got.Secret.Version)
	}
	e.keys.Fail(nil)
	if _, err := e.v.CreateCredential(ctx, c2, s2); err != nil {
		t.Errorf("CreateCredential after recovery = %v", err)
	}
}

// TestConcurrentUpdatesLoseNothing: updates without an etag retry on
// conflict, so every one of them lands.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	e := newEnv(t, vault.Config{})
	ctx := context.Background()
	c, s := apiKey("credentials/a", "k")
	if _, err := e.v.CreateCredential(ctx, c, s); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.v.UpdateCredential(ctx, c.Name, "", func(c *vault.Credential) {
				if c.Labels == nil {
					c.Labels = map[string]string{}
				}
				c.Labels[fmt.Sprintf("k%d", i)] = "v"
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _ := e.v.GetCredential(ctx, c.Name)
	if len(got.Labels) != 8 || got.Revision != 9 {
		t.Errorf("after 8 concurrent updates: %d labels, revision %d; want 8 and 9", len(got.Labels), got.Revision)
	}
}

func TestResolvePermissionsAndHosts(t *testing.T) {
	e := newEnv(t, vault.Config{})
	ctx := context.Background()
	c, s := apiKey("credentials/h", "k")
	c.AllowedCallers = []string{"callers/billing"}
	c.AllowedHosts = []string{"api.example.com", "*.svc.example.com"}
	if _, err := e.v.CreateCredential(ctx, c, s); err != nil {
		t.Fatal(err)
	}
	billing := &vault.Caller{Name: "callers/billing", Roles: []vault.Role{vault.RoleResolver}}
	other := &vault.Caller{Name: "callers/other", Roles: []vault.Role{vault.RoleResolver}}
	tests := []struct {
		caller *vault.Caller
		name   string
		target string
		want   error
	}{
		{billing, c.Name, "https://api.example.com/v1", nil},
		{billing, c.Name, "https://API.example.com./v1", nil},
		{billing, c.Name, "https://a.svc.example.com:8443/x", nil},
		{billing, c.Name, "https://svc.example.com/x", vault.ErrHostNotAllowed},
		{billing, c.Name, "https://api.example.com.evil.io/", vault.ErrHostNotAllowed},
		{billing, c.Name, "https://evil.io/?api.example.com", vault.ErrHostNotAllowed},
		{billing, c.Name, "", vault.ErrHostNotAllowed},
		{billing, c.Name, "not a url", vault.ErrHostNotAllowed},
		{other, c.Name, "https://api.example.com/v1", vault.ErrPermissionDenied},
		{billing, "credentials/missing", "https://api.example.com/v1", vault.ErrPermissionDenied},
		{nil, c.Name, "https://api.example.com/v1", vault.ErrPermissionDenied},
		{e.admin, c.Name, "https://api.example.com/v1", vault.ErrPermissionDenied},
	}
	for _, tc := range tests {
		_, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: tc.name, TargetURL: tc.target, Caller: tc.caller})
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("Resolve(%s as %v, %q) = %v, want %v", tc.name, tc.caller, tc.target, err, tc.want)
		}
	}
}

func TestOAuth2ImportedToken(t *testing.T) {
	e := newEnv(t, vault.Config{})
	ctx := context.Background()
	expiry := e.clock.Now().Add(time.Hour)
	c := &vault.Credential{Name: "credentials/o", Type: authtypes.TypeOAuth2, AllowedCallers: []string{"callers/app"}, OAuth2: &authtypes.OAuth2Config{
		GrantType: authtypes.GrantRefreshToken, TokenURL: "https://idp.example/token", ClientID: "c"}}
	s := authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{AccessToken: "at-1", RefreshToken: "rt-1", Expiry: expiry}}
	created, err := e.v.CreateCredential(ctx, c, s)
	if err != nil {
		t.Fatal(err)
	}
	if created.Secret.TokenStatus != vault.TokenStatusActive || !created.Secret.HasRefreshToken || !created.Secret.AccessTokenExpiry.Equal(expiry) {
		t.Errorf("secret status = %+v", created.Secret)
	}
	r, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
	if err != nil {
		t.Fatal(err)
	}
	if r.Parameters[0].Name != "Authorization" || r.Parameters[0].Value != "Bearer at-1" {
		t.Errorf("Resolve = %+v", r.Parameters)
	}
}

func TestNewRefusesOtherKeyProvider(t *testing.T) {
	e := newEnv(t, vault.Config{})
	other := &renamedKeys{e.keys}
	if _, err := vault.New(context.Background(), vault.Config{Store: e.store, Keys: other}); err == nil {
		t.Fatal("vault.New with another key provider succeeded")
	}
}

type renamedKeys struct{ *vaulttest.FakeKeys }

func (renamedKeys) ID() string { return "other" }
