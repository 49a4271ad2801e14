package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/server"
)

// fakeAuthServer issues code "good-code" and accepts it once with the
// right PKCE verifier; the real provider is exercised in e2e.
func fakeAuthServer(t *testing.T) *httptest.Server {
	var challenge string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/authorize":
			challenge = r.URL.Query().Get("code_challenge")
			w.WriteHeader(http.StatusOK)
		case "/token":
			r.ParseForm()
			w.Header().Set("Content-Type", "application/json")
			if r.Form.Get("code") != "good-code" || r.Form.Get("code_verifier") == "" || challenge == "" {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"error":"invalid_grant"}`)
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"access_token": "at-authz", "refresh_token": "rt-authz", "expires_in": 3600, "token_type": "Bearer"})
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestAuthorizationCodeFlow(t *testing.T) {
	idp := fakeAuthServer(t)
	var vaultHTTP *httptest.Server
	e := newTestEnv(t, func(c *envConfig) { c.PublicURL = "http://vault.test" })
	vaultHTTP = httptest.NewServer(e.srv.HTTPHandler())
	t.Cleanup(vaultHTTP.Close)
	ctx := e.admin()
	_, err := e.credentials.CreateCredential(ctx, &credvaultv1.CreateCredentialRequest{CredentialId: "crm",
		Credential: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_OAUTH2, AllowedCallers: []string{"callers/app"},
			Config: &credvaultv1.Credential_Oauth2{Oauth2: &credvaultv1.OAuth2Config{GrantType: credvaultv1.GrantType_GRANT_TYPE_AUTHORIZATION_CODE,
				TokenUrl: idp.URL + "/token", AuthUrl: idp.URL + "/authorize", ClientId: "web", Scopes: []string{"api:read"}}}},
		Secret: &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_Oauth2{Oauth2: &credvaultv1.OAuth2Secret{ClientSecret: "web-secret"}}}})
	if err != nil {
		t.Fatal(err)
	}
	authz := credvaultv1.NewAuthorizationServiceClient(e.conn)
	start, err := authz.StartAuthorization(ctx, &credvaultv1.StartAuthorizationRequest{Name: "credentials/crm"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(start.GetAuthorizationUrl())
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("state") != start.GetState() || q.Get("redirect_uri") != "http://vault.test/oauth/callback" {
		t.Fatalf("authorization URL = %s", u)
	}
	http.Get(start.GetAuthorizationUrl()) // the fake records the challenge

	callback := func(query string) (int, string) {
		resp, err := http.Get(vaultHTTP.URL + "/oauth/callback?" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// A forged state is refused before any token request.
	if code, body := callback("code=good-code&state=" + url.QueryEscape(start.GetState()+"x")); code != 400 || !strings.Contains(body, "invalid") {
		t.Errorf("forged state: %d %s", code, body)
	}
	// The provider's error is shown, escaped.
	if code, body := callback("error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state=" + url.QueryEscape(start.GetState())); code != 400 || strings.Contains(body, "<script>") || !strings.Contains(body, "access_denied") {
		t.Errorf("provider error: %d %s", code, body)
	}
	code, body := callback("code=good-code&state=" + url.QueryEscape(start.GetState()))
	if code != 200 || !strings.Contains(body, "Connected") || strings.Contains(body, "at-authz") {
		t.Fatalf("callback = %d %s", code, body)
	}
	// Single use.
	if code, _ := callback("code=good-code&state=" + url.QueryEscape(start.GetState())); code != 400 {
		t.Errorf("reused state: %d, want 400", code)
	}
	r, err := e.resolver.ResolveCredential(e.app(), &credvaultv1.ResolveCredentialRequest{Name: "credentials/crm"})
	if err != nil || r.GetParameters()[0].GetValue() != "Bearer at-authz" {
		t.Fatalf("resolve after authorization = %v, %v", r, err)
	}
	got, _ := e.credentials.GetCredential(ctx, &credvaultv1.GetCredentialRequest{Name: "credentials/crm"})
	if got.GetSecretStatus().GetTokenStatus() != credvaultv1.TokenStatus_TOKEN_STATUS_ACTIVE || !got.GetSecretStatus().GetHasRefreshToken() {
		t.Errorf("secret status after authorization = %v", got.GetSecretStatus())
	}
	// Only authorization-code credentials can start a flow.
	e.credentials.CreateCredential(ctx, &credvaultv1.CreateCredentialRequest{CredentialId: "k", Credential: apiKeyCred(), Secret: apiKeySecret("k")})
	if _, err := authz.StartAuthorization(ctx, &credvaultv1.StartAuthorizationRequest{Name: "credentials/k"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("StartAuthorization(api key) = %v, want InvalidArgument", err)
	}
}

func TestCallbackForwarder(t *testing.T) {
	e := newTestEnv(t, func(c *envConfig) { c.PublicURL = "https://vault.example" })
	idp := fakeAuthServer(t)
	_, err := e.credentials.CreateCredential(e.admin(), &credvaultv1.CreateCredentialRequest{CredentialId: "shared",
		Credential: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_OAUTH2,
			Config: &credvaultv1.Credential_Oauth2{Oauth2: &credvaultv1.OAuth2Config{GrantType: credvaultv1.GrantType_GRANT_TYPE_AUTHORIZATION_CODE,
				TokenUrl: idp.URL + "/token", AuthUrl: idp.URL + "/authorize", ClientId: "web", RedirectUri: "https://app.example/oauth/return"}}},
		Secret: &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_Oauth2{Oauth2: &credvaultv1.OAuth2Secret{ClientSecret: "s"}}}})
	if err != nil {
		t.Fatal(err)
	}
	start, err := credvaultv1.NewAuthorizationServiceClient(e.conn).StartAuthorization(e.admin(), &credvaultv1.StartAuthorizationRequest{Name: "credentials/shared"})
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := url.Parse(start.GetAuthorizationUrl()); u.Query().Get("redirect_uri") != "https://app.example/oauth/return" {
		t.Fatalf("redirect_uri = %s, want the credential's override", u.Query().Get("redirect_uri"))
	}
	appHandled := 0
	h := server.CallbackForwarder("https://vault.example", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { appHandled++ }))
	tests := []struct {
		query    string
		redirect bool
	}{
		{"code=c1&state=" + url.QueryEscape(start.GetState()) + "&iss=x", true},
		{"code=c1&state=the-apps-own-state", false},
		{"code=c1", false},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "https://app.example/oauth/return?"+tc.query, nil))
		if tc.redirect {
			if rec.Code != http.StatusTemporaryRedirect || rec.Header().Get("Location") != "https://vault.example/oauth/callback?"+tc.query {
				t.Errorf("forwarder(%s) = %d %s", tc.query, rec.Code, rec.Header().Get("Location"))
			}
		} else if rec.Code != http.StatusOK {
			t.Errorf("forwarder(%s) = %d, want passed through", tc.query, rec.Code)
		}
	}
	if appHandled != 2 {
		t.Errorf("the app handled %d requests, want 2", appHandled)
	}
	// A state for another vault passes through too.
	other := server.CallbackForwarder("https://other-vault.example", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) }))
	rec := httptest.NewRecorder()
	other.ServeHTTP(rec, httptest.NewRequest("GET", "/cb?state="+url.QueryEscape(start.GetState()), nil))
	if rec.Code != 299 {
		t.Errorf("state of another vault: %d, want passed through", rec.Code)
	}
}

// FuzzCallback sends arbitrary queries to the OAuth callback: it never
// panics, never answers 200 without a valid state, and the page never
// carries unescaped markup from the query.
func FuzzCallback(f *testing.F) {
	e := newTestEnv(f, func(c *envConfig) { c.PublicURL = "http://vault.test" })
	h := e.srv.HTTPHandler()
	f.Add("code=abc&state=a.b.c")
	f.Add("error=access_denied&error_description=%3Cb%3Ex%3C%2Fb%3E&state=x")
	f.Add("code=&state=")
	f.Fuzz(func(t *testing.T, query string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/oauth/callback", nil)
		req.URL.RawQuery = query
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			t.Fatalf("callback(%q) = 200 without a valid state", query)
		}
		if strings.Contains(rec.Body.String(), "<script") {
			t.Fatalf("callback(%q) echoes markup", query)
		}
	})
}
