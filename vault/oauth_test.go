package vault_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credvault/credvault/authtypes"
	"github.com/credvault/credvault/vault"
)

// fakeProvider is an httptest token endpoint for the error paths; the real
// provider (oidc-provider) is in e2e. It rotates refresh tokens and, like
// real providers, refuses a used one with invalid_grant.
type fakeProvider struct {
	*httptest.Server
	requests  atomic.Int64
	revokes   atomic.Int64
	mu        sync.Mutex // guards the fields below
	refresh   string     // the current valid refresh token
	n         int
	expiresIn int // 0: omit expires_in
	status    int // when not 0, answer this status with error "temporarily_unavailable"
	delay     time.Duration
	body      string // when not "", answer 200 with this body
}

func newFakeProvider(t *testing.T) *fakeProvider {
	p := &fakeProvider{refresh: "rt-0", expiresIn: 3600}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/revoke" {
			p.revokes.Add(1)
			return
		}
		p.requests.Add(1)
		p.mu.Lock()
		delay, status, body := p.delay, p.status, p.body
		p.mu.Unlock()
		time.Sleep(delay)
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		if body != "" {
			fmt.Fprint(w, body)
			return
		}
		if status != 0 {
			w.WriteHeader(status)
			fmt.Fprint(w, `{"error":"temporarily_unavailable"}`)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		switch r.Form.Get("grant_type") {
		case "refresh_token":
			if r.Form.Get("refresh_token") != p.refresh {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"error":"invalid_grant","error_description":"grant request is invalid"}`)
				return
			}
		case "client_credentials":
			if _, secret, _ := r.BasicAuth(); secret != "cs" && r.Form.Get("client_secret") != "cs" {
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"error":"invalid_client"}`)
				return
			}
		}
		p.n++
		p.refresh = fmt.Sprintf("rt-%d", p.n)
		resp := map[string]any{"access_token": fmt.Sprintf("at-%d", p.n), "token_type": "Bearer", "refresh_token": p.refresh}
		if p.expiresIn > 0 {
			resp["expires_in"] = p.expiresIn
		}
		json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *fakeProvider) set(f func(p *fakeProvider)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func oauthCred(name string, p *fakeProvider, grant authtypes.GrantType) *vault.Credential {
	return &vault.Credential{Name: name, Type: authtypes.TypeOAuth2, AllowedCallers: []string{"callers/app"},
		OAuth2: &authtypes.OAuth2Config{GrantType: grant, TokenURL: p.URL + "/token", RevocationURL: p.URL + "/revoke", ClientID: "c"}}
}

func fastExchanger() *vault.OAuthConfig {
	return &vault.OAuthConfig{Exchanger: &authtypes.Exchanger{Backoff: func(int) time.Duration { return time.Millisecond }}}
}

func TestClientCredentialsCachedUntilMargin(t *testing.T) {
	p := newFakeProvider(t)
	e := newEnv(t, vault.Config{OAuth: fastExchanger()})
	ctx := context.Background()
	c := oauthCred("credentials/cc", p, authtypes.GrantClientCredentials)
	if _, err := e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{ClientSecret: "cs"}}); err != nil {
		t.Fatal(err)
	}
	resolve := func() *vault.Resolution {
		t.Helper()
		r, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
		if err != nil {
			t.Fatalf("Resolve = %v", err)
		}
		return r
	}
	r := resolve()
	if r.Parameters[0].Value != "Bearer at-1" || p.requests.Load() != 1 {
		t.Fatalf("first resolve = %v after %d token requests", r.Parameters, p.requests.Load())
	}
	if want := e.clock.Now().Add(time.Hour - time.Minute); !r.ExpireTime.Equal(want) {
		t.Errorf("ExpireTime = %v, want expiry minus the 60s skew (%v)", r.ExpireTime, want)
	}
	for range 100 {
		resolve()
	}
	if n := p.requests.Load(); n != 1 {
		t.Errorf("101 resolves made %d token requests, want 1", n)
	}
	e.clock.Advance(time.Hour - 30*time.Second) // inside the margin
	if r := resolve(); r.Parameters[0].Value != "Bearer at-2" || p.requests.Load() != 2 {
		t.Errorf("resolve inside the margin = %v after %d requests, want at-2 after 2", r.Parameters, p.requests.Load())
	}
	got, _ := e.v.GetCredential(ctx, c.Name)
	if got.Secret.TokenStatus != vault.TokenStatusActive || got.Secret.LastRefreshTime.IsZero() {
		t.Errorf("secret status = %+v", got.Secret)
	}
}

func TestShortLivedTokensAreStillCached(t *testing.T) {
	p := newFakeProvider(t)
	p.set(func(p *fakeProvider) { p.expiresIn = 10 })
	e := newEnv(t, vault.Config{OAuth: fastExchanger()})
	ctx := context.Background()
	c := oauthCred("credentials/short", p, authtypes.GrantClientCredentials)
	e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{ClientSecret: "cs"}})
	for range 10 {
		if _, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app}); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.requests.Load(); n != 1 {
		t.Errorf("10 resolves of a 10s token made %d requests, want 1 (margin = half the lifetime)", n)
	}
	e.clock.Advance(6 * time.Second)
	if _, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app}); err != nil {
		t.Fatal(err)
	}
	if n := p.requests.Load(); n != 2 {
		t.Errorf("after 6s of a 10s token: %d requests, want 2", n)
	}
}

// TestRefreshStormMakesOneRequest: many concurrent resolves of an expired
// credential share one token request, and the rotated refresh token is
// committed before they return (a cold vault on the same store uses it).
func TestRefreshStormMakesOneRequest(t *testing.T) {
	p := newFakeProvider(t)
	p.set(func(p *fakeProvider) { p.delay = 50 * time.Millisecond })
	e := newEnv(t, vault.Config{OAuth: fastExchanger()})
	ctx := context.Background()
	c := oauthCred("credentials/storm", p, authtypes.GrantRefreshToken)
	expired := e.clock.Now().Add(-time.Minute)
	if _, err := e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{ClientSecret: "cs", AccessToken: "old", RefreshToken: "rt-0", Expiry: expired}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
			if err != nil || r.Parameters[0].Value != "Bearer at-1" {
				failures.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := p.requests.Load(); n != 1 || failures.Load() != 0 {
		t.Fatalf("200 concurrent resolves: %d token requests, %d failures; want 1 and 0", n, failures.Load())
	}
	// The rotated refresh token (rt-1) is durable: a fresh vault on the same
	// store refreshes with it successfully after expiry.
	e.clock.Advance(2 * time.Hour)
	v2, err := vault.New(ctx, vault.Config{Store: e.store, Keys: e.keys, Clock: e.clock, OAuth: fastExchanger()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := v2.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
	if err != nil || r.Parameters[0].Value != "Bearer at-2" {
		t.Fatalf("resolve with the persisted rotated refresh token = %v, %v", r, err)
	}
}

func TestInvalidGrantNeedsAuthorization(t *testing.T) {
	p := newFakeProvider(t)
	e := newEnv(t, vault.Config{OAuth: fastExchanger()})
	ctx := context.Background()
	c := oauthCred("credentials/revoked", p, authtypes.GrantRefreshToken)
	e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{RefreshToken: "rt-stolen-and-rotated"}})
	_, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
	if !errors.Is(err, vault.ErrAuthorizationRequired) {
		t.Fatalf("Resolve with a dead refresh token = %v, want ErrAuthorizationRequired", err)
	}
	if strings.Contains(err.Error(), "rt-stolen") {
		t.Errorf("the error shows the refresh token: %v", err)
	}
	if n := p.requests.Load(); n != 1 {
		t.Errorf("invalid_grant was retried: %d requests", n)
	}
	got, _ := e.v.GetCredential(ctx, c.Name)
	if got.Secret.TokenStatus != vault.TokenStatusAuthorizationRequired || !strings.Contains(got.Secret.LastError, "invalid_grant") {
		t.Errorf("secret status = %v %q", got.Secret.TokenStatus, got.Secret.LastError)
	}
}

func TestProviderOutageServesValidToken(t *testing.T) {
	p := newFakeProvider(t)
	e := newEnv(t, vault.Config{OAuth: fastExchanger()})
	ctx := context.Background()
	c := oauthCred("credentials/outage", p, authtypes.GrantRefreshToken)
	// Inside the refresh margin but not expired.
	e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{AccessToken: "still-good", RefreshToken: "rt-0", Expiry: e.clock.Now().Add(30 * time.Second)}})
	p.set(func(p *fakeProvider) { p.status = http.StatusServiceUnavailable })
	r, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
	if err != nil || r.Parameters[0].Value != "Bearer still-good" {
		t.Fatalf("resolve during an outage with a valid token = %v, %v", r, err)
	}
	if n := p.requests.Load(); n != 3 {
		t.Errorf("transient failure tried %d times, want 3 (bounded retries)", n)
	}
	got, _ := e.v.GetCredential(ctx, c.Name)
	if got.Secret.TokenStatus != vault.TokenStatusRefreshFailed {
		t.Errorf("token status = %v, want REFRESH_FAILED", got.Secret.TokenStatus)
	}
	e.clock.Advance(time.Minute) // now expired
	if _, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app}); !errors.Is(err, vault.ErrRefreshFailed) {
		t.Errorf("resolve during an outage with an expired token = %v, want ErrRefreshFailed", err)
	}
	p.set(func(p *fakeProvider) { p.status = 0 })
	if r, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app}); err != nil || r.Parameters[0].Value != "Bearer at-1" {
		t.Errorf("resolve after recovery = %v, %v", r, err)
	}
}

func TestForceRefreshIsRateLimited(t *testing.T) {
	p := newFakeProvider(t)
	e := newEnv(t, vault.Config{OAuth: fastExchanger()})
	ctx := context.Background()
	c := oauthCred("credentials/force", p, authtypes.GrantClientCredentials)
	e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{ClientSecret: "cs"}})
	e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
	for range 5 {
		e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app, ForceRefresh: true})
	}
	if n := p.requests.Load(); n != 1 {
		t.Errorf("5 forced refreshes right after a refresh made %d more requests, want 0", n-1)
	}
	e.clock.Advance(11 * time.Second)
	r, _ := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app, ForceRefresh: true})
	if n := p.requests.Load(); n != 2 || r.Parameters[0].Value != "Bearer at-2" {
		t.Errorf("forced refresh after the interval: %d requests, %v", n, r.Parameters)
	}
}

func TestMissingExpiresInUsesDefaultLifetime(t *testing.T) {
	p := newFakeProvider(t)
	p.set(func(p *fakeProvider) { p.expiresIn = 0 })
	e := newEnv(t, vault.Config{OAuth: &vault.OAuthConfig{DefaultLifetime: 5 * time.Minute}})
	ctx := context.Background()
	c := oauthCred("credentials/noexp", p, authtypes.GrantClientCredentials)
	e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{ClientSecret: "cs"}})
	e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
	got, _ := e.v.GetCredential(ctx, c.Name)
	if want := e.clock.Now().Add(5 * time.Minute); !got.Secret.AccessTokenExpiry.Equal(want) {
		t.Errorf("access token expiry = %v, want now + the default 5m", got.Secret.AccessTokenExpiry)
	}
}

func TestDeleteRevokesAtProvider(t *testing.T) {
	p := newFakeProvider(t)
	e := newEnv(t, vault.Config{OAuth: fastExchanger()})
	ctx := context.Background()
	c := oauthCred("credentials/bye", p, authtypes.GrantRefreshToken)
	e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{RefreshToken: "rt-0"}})
	if err := e.v.DeleteCredential(ctx, c.Name, ""); err != nil {
		t.Fatal(err)
	}
	if n := p.revokes.Load(); n != 1 {
		t.Errorf("delete made %d revocation requests, want 1", n)
	}
}

// TestRefreshCutOffByACrash: the provider rotated the refresh token, then
// the vault died before committing the answer. On start-up the pending
// refresh is retried once; the provider refuses the consumed token, and the
// credential says plainly that it needs authorizing again.
func TestRefreshCutOffByACrash(t *testing.T) {
	p := newFakeProvider(t)
	crash := &vault.OAuthConfig{Exchanger: &authtypes.Exchanger{}, AfterTokenResponse: func(string) error { return errors.New("simulated crash") }}
	e := newEnv(t, vault.Config{OAuth: crash})
	ctx := context.Background()
	c := oauthCred("credentials/crash", p, authtypes.GrantRefreshToken)
	e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{AccessToken: "old", RefreshToken: "rt-0", Expiry: e.clock.Now().Add(-time.Minute)}})
	if _, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app}); err == nil {
		t.Fatal("resolve through a crash succeeded")
	}
	got, _ := e.v.GetCredential(ctx, c.Name)
	if !got.Secret.RefreshPending {
		t.Fatal("no durable refresh-pending marker before the token request")
	}
	// Restart.
	v2, err := vault.New(ctx, vault.Config{Store: e.store, Keys: e.keys, Clock: e.clock, OAuth: fastExchanger()})
	if err != nil {
		t.Fatal(err)
	}
	n, err := v2.RecoverPendingRefreshes(ctx)
	if err != nil || n != 1 {
		t.Fatalf("RecoverPendingRefreshes = %d, %v", n, err)
	}
	got, _ = v2.GetCredential(ctx, c.Name)
	if got.Secret.RefreshPending || got.Secret.TokenStatus != vault.TokenStatusAuthorizationRequired || !strings.Contains(got.Secret.LastError, "stopped during a refresh") {
		t.Errorf("after recovery: pending %v, status %v, last_error %q", got.Secret.RefreshPending, got.Secret.TokenStatus, got.Secret.LastError)
	}
	if strings.Contains(got.Secret.LastError, "rt-") {
		t.Errorf("last_error shows a token: %q", got.Secret.LastError)
	}
}

// TestRecoveryAfterCrashWhenProviderDidNotRotate: if the provider never got
// (or never processed) the request, the retry simply works.
func TestRecoveryAfterCrashBeforeTheProvider(t *testing.T) {
	p := newFakeProvider(t)
	e := newEnv(t, vault.Config{OAuth: fastExchanger()})
	ctx := context.Background()
	c := oauthCred("credentials/early", p, authtypes.GrantRefreshToken)
	e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{RefreshToken: "rt-0"}})
	p.set(func(p *fakeProvider) { p.status = 503 }) // the request never succeeds
	e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
	p.set(func(p *fakeProvider) { p.status = 0 })
	if n, err := e.v.RecoverPendingRefreshes(ctx); err != nil || n != 0 {
		t.Errorf("a failed refresh left a pending marker: %d, %v", n, err)
	}
	if r, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app}); err != nil || r.Parameters[0].Value != "Bearer at-1" {
		t.Errorf("resolve after the outage = %v, %v", r, err)
	}
}

func TestFailureTaxonomy(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
		want   error
		served bool // the still-valid access token is served
	}{
		{"invalid_client", "", 0, vault.ErrClientRejected, true},
		{"error in a 200 body", `{"error":"bad_refresh_token","error_description":"The refresh token is invalid"}`, 0, vault.ErrAuthorizationRequired, false},
		{"malformed", `<html>oops</html>`, 0, vault.ErrTokenResponseMalformed, true},
		{"no access token", `{"token_type":"Bearer"}`, 0, vault.ErrTokenResponseMalformed, true},
		{"429", "", http.StatusTooManyRequests, vault.ErrRefreshFailed, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakeProvider(t)
			p.set(func(p *fakeProvider) { p.body, p.status = tc.body, tc.status })
			e := newEnv(t, vault.Config{OAuth: fastExchanger()})
			ctx := context.Background()
			grant := authtypes.GrantRefreshToken
			secret := &authtypes.OAuth2Secret{AccessToken: "valid", RefreshToken: "rt-0", Expiry: e.clock.Now().Add(30 * time.Second)}
			if tc.name == "invalid_client" {
				grant = authtypes.GrantClientCredentials
				secret.ClientSecret, secret.RefreshToken = "wrong", ""
			}
			c := oauthCred("credentials/t", p, grant)
			c.OAuth2.AuthStyle = authtypes.AuthStyleInHeader
			if _, err := e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: secret}); err != nil {
				t.Fatal(err)
			}
			r, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
			if tc.served {
				if err != nil || r.Parameters[0].Value != "Bearer valid" {
					t.Errorf("resolve = %v, %v; want the valid token served", r, err)
				}
				e.clock.Advance(time.Minute) // expired now
				_, err = e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("resolve = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestProviderQuirksPerCredential(t *testing.T) {
	ctx := context.Background()
	t.Run("client secret rotation", func(t *testing.T) {
		p := newFakeProvider(t)
		e := newEnv(t, vault.Config{OAuth: fastExchanger()})
		c := oauthCred("credentials/rot", p, authtypes.GrantClientCredentials)
		c.OAuth2.AuthStyle = authtypes.AuthStyleInHeader
		// The provider already accepts only the new secret.
		e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{ClientSecret: "retired", AdditionalClientSecrets: []string{"cs"}}})
		r, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
		if err != nil || r.Parameters[0].Value != "Bearer at-1" {
			t.Fatalf("resolve with the second client secret = %v, %v", r, err)
		}
	})
	t.Run("JWT exp when expires_in is missing", func(t *testing.T) {
		p := newFakeProvider(t)
		e := newEnv(t, vault.Config{OAuth: fastExchanger()})
		exp := e.clock.Now().Add(10 * time.Minute).Unix()
		jwt := "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"exp":%d}`, exp))) + ".sig"
		p.set(func(p *fakeProvider) { p.body = `{"access_token":"` + jwt + `","token_type":"Bearer"}` })
		c := oauthCred("credentials/jwt", p, authtypes.GrantClientCredentials)
		e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{ClientSecret: "cs"}})
		e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
		got, _ := e.v.GetCredential(ctx, c.Name)
		if got.Secret.AccessTokenExpiry.Unix() != exp {
			t.Errorf("expiry = %v, want the JWT's exp", got.Secret.AccessTokenExpiry)
		}
	})
	t.Run("default lifetime per credential", func(t *testing.T) {
		p := newFakeProvider(t)
		p.set(func(p *fakeProvider) { p.expiresIn = 0 })
		e := newEnv(t, vault.Config{OAuth: fastExchanger()})
		c := oauthCred("credentials/life", p, authtypes.GrantClientCredentials)
		c.OAuth2.DefaultLifetime = 7 * time.Minute
		e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{ClientSecret: "cs"}})
		e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
		got, _ := e.v.GetCredential(ctx, c.Name)
		if want := e.clock.Now().Add(7 * time.Minute); !got.Secret.AccessTokenExpiry.Equal(want) {
			t.Errorf("expiry = %v, want %v", got.Secret.AccessTokenExpiry, want)
		}
	})
	t.Run("refresh jitter", func(t *testing.T) {
		p := newFakeProvider(t)
		e := newEnv(t, vault.Config{OAuth: fastExchanger()})
		c := oauthCred("credentials/jit", p, authtypes.GrantClientCredentials)
		c.OAuth2.RefreshJitter = 10 * time.Minute
		e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{ClientSecret: "cs"}})
		r, _ := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
		latest := e.clock.Now().Add(time.Hour - time.Minute)
		if !r.ExpireTime.Before(latest) || r.ExpireTime.Before(latest.Add(-10*time.Minute)) {
			t.Errorf("cache until %v; want within the 10m jitter before %v", r.ExpireTime, latest)
		}
	})
}

// TestSlowProviderDoesNotHangResolves: each token request is bounded by the
// exchanger's client timeout, and a resolve never waits past its own
// deadline; a valid token is still served.
func TestSlowProviderDoesNotHangResolves(t *testing.T) {
	p := newFakeProvider(t)
	p.set(func(p *fakeProvider) { p.delay = 2 * time.Second })
	cfg := &vault.OAuthConfig{Exchanger: &authtypes.Exchanger{HTTPClient: &http.Client{Timeout: 100 * time.Millisecond},
		Backoff: func(int) time.Duration { return time.Millisecond }}}
	e := newEnv(t, vault.Config{OAuth: cfg})
	ctx := context.Background()
	c := oauthCred("credentials/slow", p, authtypes.GrantClientCredentials)
	e.v.CreateCredential(ctx, c, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{ClientSecret: "cs", AccessToken: "valid", Expiry: e.clock.Now().Add(20 * time.Second)}})
	start := time.Now()
	r, err := e.v.Resolve(ctx, vault.ResolveRequest{Name: c.Name, Caller: e.app})
	if err != nil || r.Parameters[0].Value != "Bearer valid" {
		t.Errorf("resolve with a slow provider and a valid token = %v, %v", r, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("resolve took %v; token requests are not bounded", d)
	}
	e.clock.Advance(time.Minute)
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := e.v.Resolve(dctx, vault.ResolveRequest{Name: c.Name, Caller: e.app}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("resolve past its deadline = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("resolve waited %v past a 50ms deadline", d)
	}
}
