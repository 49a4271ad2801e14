package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/credvault/credvault/client"
	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/server"
)

// bearerCreds is gRPC per-RPC credentials with a caller token.
type bearerCreds string

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearerCreds) RequireTransportSecurity() bool { return false }

// oauthServer is a real OAuth 2.0 authorization server (oidc-provider,
// e2e/oauthserver) on 127.0.0.1.
type oauthServer struct {
	url string
}

func startOAuthServer(t *testing.T, redirectURIs []string, env ...string) *oauthServer {
	t.Helper()
	dir, _ := filepath.Abs("oauthserver")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider")); err != nil {
		t.Fatalf("oidc-provider is not installed: run the tests with `make test` (it runs npm ci in e2e/oauthserver)")
	}
	cmd := exec.Command("node", "server.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{"PORT=0", "REDIRECT_URIS=" + strings.Join(redirectURIs, ",")}, env...)...)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	lines := make(chan string, 1)
	go func() {
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "ready ") {
				lines <- l
			}
		}
	}()
	select {
	case l := <-lines:
		return &oauthServer{url: strings.TrimSpace(strings.TrimPrefix(l, "ready "))}
	case <-time.After(30 * time.Second):
		t.Fatal("oidc-provider did not start in 30s")
	}
	return nil
}

// stats are the provider's counts of token requests by grant type.
func (o *oauthServer) stats(t *testing.T) map[string]any {
	t.Helper()
	resp, err := http.Get(o.url + "/test/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return m
}

func count(m map[string]any, path ...string) int {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return 0
		}
		cur = mm[p]
	}
	n, _ := cur.(float64)
	return int(n)
}

func (d *daemon) mustGRPC(t *testing.T, token, method, body string) map[string]any {
	t.Helper()
	out, stderr, code := d.grpcurl(t, token, method, body)
	if code != 0 {
		t.Fatalf("%s: exit %d %s", method, code, stderr)
	}
	var m map[string]any
	json.Unmarshal([]byte(out), &m)
	return m
}

func resolvedValue(m map[string]any) string {
	ps, _ := m["parameters"].([]any)
	if len(ps) == 0 {
		return ""
	}
	v, _ := ps[0].(map[string]any)["value"].(string)
	return v
}

// TestOAuthAgainstRealProvider runs the OAuth lifecycle against
// oidc-provider: client credentials (basic and post), the authorization
// code flow with PKCE driven by a cookie-keeping user agent, refresh with
// rotation under a concurrent storm (exactly one token request; a double
// refresh would kill the grant through reuse detection), revocation on
// delete, and the sign-in token exchange.
func TestOAuthAgainstRealProvider(t *testing.T) {
	httpAddr := freeAddr(t)
	callback := "http://" + httpAddr + "/oauth/callback"
	// An application that owns the one redirect URI a provider allows, with
	// credvault's forwarder in front of its own handler.
	appLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appReturn := "http://" + appLis.Addr().String() + "/oauth/return"
	appOwn := make(chan string, 4)
	appSrv := &http.Server{Handler: server.CallbackForwarder("http://"+httpAddr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		appOwn <- r.URL.RawQuery
		fmt.Fprint(w, "the app's own callback")
	}))}
	go appSrv.Serve(appLis)
	t.Cleanup(func() { appSrv.Close() })
	idp := startOAuthServer(t, []string{callback, appReturn}, "ACCESS_TOKEN_TTL=4")
	d := startDaemonAt(t, t.TempDir(), nil, httpAddr, "--oauth-force-refresh-interval", "1s")
	admin := d.adminToken(t)
	app := mintResolver(t, d, admin, "app")
	const cs = "credvault.v1.CredentialService/"
	const resolve = "credvault.v1.ResolverService/ResolveCredential"

	// Client credentials, client_secret_basic and client_secret_post.
	for id, style := range map[string]string{"cc-basic": "AUTH_STYLE_IN_HEADER", "cc-post": "AUTH_STYLE_IN_PARAMS"} {
		client, secret := "cc-client", "cc-secret"
		if id == "cc-post" {
			client, secret = "cc-post", "cc-post-secret"
		}
		d.mustGRPC(t, admin, cs+"CreateCredential", fmt.Sprintf(`{"credential_id": %q, "credential": {"type": "CREDENTIAL_TYPE_OAUTH2",
			"allowed_callers": ["callers/app"], "oauth2": {"grant_type": "GRANT_TYPE_CLIENT_CREDENTIALS", "token_url": %q,
			"client_id": %q, "scopes": ["api:read"], "auth_style": %q}}, "secret": {"oauth2": {"client_secret": %q}}}`,
			id, idp.url+"/token", client, style, secret))
		r := d.mustGRPC(t, app, resolve, `{"name": "credentials/`+id+`"}`)
		if !strings.HasPrefix(resolvedValue(r), "Bearer ") || len(resolvedValue(r)) < 20 {
			t.Fatalf("%s resolve = %v", id, r)
		}
		if again := d.mustGRPC(t, app, resolve, `{"name": "credentials/`+id+`"}`); resolvedValue(again) != resolvedValue(r) {
			t.Errorf("%s: the second resolve got a new token; want the cached one", id)
		}
	}
	if n := count(idp.stats(t), "token", "client_credentials"); n != 2 {
		t.Errorf("client credentials token requests = %d, want 2 (one per credential)", n)
	}

	// The Go client: a target that answers 401 once makes it re-resolve
	// with force_refresh, which the provider sees as a new token request.
	time.Sleep(1100 * time.Millisecond) // past the forced-refresh interval
	conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearerCreds(app)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var authMu sync.Mutex // guards seenAuth
	var seenAuth []string
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authMu.Lock()
		seenAuth = append(seenAuth, r.Header.Get("Authorization"))
		first := len(seenAuth) == 1
		authMu.Unlock()
		if first {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer target.Close()
	before := count(idp.stats(t), "token", "client_credentials")
	hc := &http.Client{Transport: &client.Transport{Resolver: credvaultv1.NewResolverServiceClient(conn), Credential: "credentials/cc-basic"}}
	resp, err := hc.Get(target.URL + "/api")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("client through a 401: %v %v", resp, err)
	}
	resp.Body.Close()
	authMu.Lock()
	defer authMu.Unlock()
	if n := count(idp.stats(t), "token", "client_credentials") - before; n != 1 || len(seenAuth) != 2 || seenAuth[0] == seenAuth[1] {
		t.Errorf("forced refresh: %d token requests at the provider, %d target requests; want 1 and 2 with a new token", n, len(seenAuth))
	}

	// Authorization code with PKCE.
	d.mustGRPC(t, admin, cs+"CreateCredential", fmt.Sprintf(`{"credential_id": "web", "credential": {"type": "CREDENTIAL_TYPE_OAUTH2",
		"allowed_callers": ["callers/app"], "oauth2": {"grant_type": "GRANT_TYPE_AUTHORIZATION_CODE", "token_url": %q, "auth_url": %q,
		"revocation_url": %q, "client_id": "web-client", "scopes": ["openid", "api:read"]}}, "secret": {"oauth2": {"client_secret": "web-secret"}}}`,
		idp.url+"/token", idp.url+"/auth", idp.url+"/token/revocation"))
	start := d.mustGRPC(t, admin, "credvault.v1.AuthorizationService/StartAuthorization", `{"name": "credentials/web"}`)
	page := followAuthorization(t, start["authorizationUrl"].(string))
	if !strings.Contains(page, "Connected") {
		t.Fatalf("callback page: %s", page)
	}
	first := resolvedValue(d.mustGRPC(t, app, resolve, `{"name": "credentials/web"}`))
	if !strings.HasPrefix(first, "Bearer ") {
		t.Fatalf("resolve after authorization = %q", first)
	}

	// Let the 4 s access token expire, then a storm of concurrent resolves:
	// one refresh, and the rotated refresh token is kept (the next refresh
	// works, which reuse detection would forbid otherwise).
	for round := 1; round <= 2; round++ {
		time.Sleep(4500 * time.Millisecond)
		before := count(idp.stats(t), "token", "refresh_token")
		var wg sync.WaitGroup
		values := make(chan string, 50)
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, _, code := d.grpcurl(t, app, resolve, `{"name": "credentials/web"}`)
				var m map[string]any
				json.Unmarshal([]byte(out), &m)
				if code == 0 {
					values <- resolvedValue(m)
				} else {
					values <- "error"
				}
			}()
		}
		wg.Wait()
		close(values)
		seen := map[string]int{}
		for v := range values {
			seen[v]++
		}
		if n := count(idp.stats(t), "token", "refresh_token") - before; n != 1 {
			t.Errorf("refresh round %d: %d refresh requests, want exactly 1", round, n)
		}
		if len(seen) != 1 || seen["error"] > 0 || seen[first] > 0 {
			t.Errorf("refresh round %d: resolves saw %v, want one new token for all", round, seen)
		}
	}

	// Credential sharing: the credential's redirect_uri is the app's; the
	// provider sends the user agent there, the forwarder hands it to the
	// vault, and a foreign state reaches the app's own handler.
	d.mustGRPC(t, admin, cs+"CreateCredential", fmt.Sprintf(`{"credential_id": "shared", "credential": {"type": "CREDENTIAL_TYPE_OAUTH2",
		"allowed_callers": ["callers/app"], "oauth2": {"grant_type": "GRANT_TYPE_AUTHORIZATION_CODE", "token_url": %q, "auth_url": %q,
		"client_id": "web-client", "scopes": ["openid"], "redirect_uri": %q}}, "secret": {"oauth2": {"client_secret": "web-secret"}}}`,
		idp.url+"/token", idp.url+"/auth", appReturn))
	start = d.mustGRPC(t, admin, "credvault.v1.AuthorizationService/StartAuthorization", `{"name": "credentials/shared"}`)
	if page := followAuthorization(t, start["authorizationUrl"].(string)); !strings.Contains(page, "Connected") {
		t.Fatalf("shared redirect URI: callback page %s", page)
	}
	if v := resolvedValue(d.mustGRPC(t, app, resolve, `{"name": "credentials/shared"}`)); !strings.HasPrefix(v, "Bearer ") {
		t.Errorf("resolve of the shared-redirect credential = %q", v)
	}
	if page := followAuthorization(t, appReturn+"?code=x&state=the-apps-own"); !strings.Contains(page, "the app's own callback") || len(appOwn) != 1 {
		t.Errorf("a foreign state did not reach the app: %q", page)
	}

	// A refresh token the provider does not know: AUTHORIZATION_REQUIRED,
	// with the way back in the error details.
	d.mustGRPC(t, admin, cs+"CreateCredential", fmt.Sprintf(`{"credential_id": "dead", "credential": {"type": "CREDENTIAL_TYPE_OAUTH2",
		"allowed_callers": ["callers/app"], "oauth2": {"grant_type": "GRANT_TYPE_REFRESH_TOKEN", "token_url": %q, "client_id": "web-client"}},
		"secret": {"oauth2": {"client_secret": "web-secret", "refresh_token": "never-issued"}}}`, idp.url+"/token"))
	if _, stderr, code := d.grpcurl(t, app, resolve, `{"name": "credentials/dead"}`); code != 64+9 || !strings.Contains(stderr, "AUTHORIZATION_REQUIRED") || !strings.Contains(stderr, "StartAuthorization") {
		t.Errorf("resolve with a dead refresh token: exit %d %s; want FailedPrecondition + AUTHORIZATION_REQUIRED", code, stderr)
	}
	got := d.mustGRPC(t, admin, cs+"GetCredential", `{"name": "credentials/dead"}`)
	if st := got["secretStatus"].(map[string]any); st["tokenStatus"] != "TOKEN_STATUS_AUTHORIZATION_REQUIRED" || !strings.Contains(fmt.Sprint(st["lastError"]), "invalid_grant") {
		t.Errorf("secret status after invalid_grant = %v", st)
	}

	// Delete revokes the refresh token at the provider (RFC 7009).
	before = count(idp.stats(t), "revocation")
	d.mustGRPC(t, admin, cs+"DeleteCredential", `{"name": "credentials/web"}`)
	if n := count(idp.stats(t), "revocation") - before; n != 1 {
		t.Errorf("delete made %d revocation requests, want 1", n)
	}

	// Sign-in token exchange (RFC 8693), at write time; a used token fails
	// the write with a field violation.
	signIn := mintSignInToken(t, idp)
	body := fmt.Sprintf(`{"credential_id": "%%s", "credential": {"type": "CREDENTIAL_TYPE_OAUTH2", "allowed_callers": ["callers/app"],
		"oauth2": {"grant_type": "GRANT_TYPE_TOKEN_EXCHANGE", "token_url": %q, "client_id": "web-client"}},
		"secret": {"oauth2": {"client_secret": "web-secret", "sign_in_token": %q}}}`, idp.url+"/token", signIn)
	created := d.mustGRPC(t, admin, cs+"CreateCredential", fmt.Sprintf(body, "junction"))
	if st := created["secretStatus"].(map[string]any); st["tokenStatus"] != "TOKEN_STATUS_ACTIVE" {
		t.Errorf("after the exchange: %v", st)
	}
	if v := resolvedValue(d.mustGRPC(t, app, resolve, `{"name": "credentials/junction"}`)); !strings.HasPrefix(v, "Bearer ") {
		t.Errorf("resolve of the exchanged credential = %q", v)
	}
	_, stderr, code := d.grpcurl(t, admin, cs+"CreateCredential", fmt.Sprintf(body, "junction-again"))
	if code != 64+3 || !strings.Contains(stderr, "sign_in_token") {
		t.Errorf("reused sign-in token: exit %d %s; want InvalidArgument naming sign_in_token", code, stderr)
	}
	if strings.Contains(d.logs.String(), signIn) {
		t.Error("the sign-in token appears in the daemon's logs")
	}
}

// followAuthorization plays the user agent: it follows the provider's
// redirects (keeping its interaction cookies) to the vault's callback and
// returns the callback page.
func followAuthorization(t *testing.T, authURL string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

func mintSignInToken(t *testing.T, idp *oauthServer) string {
	t.Helper()
	resp, err := http.PostForm(idp.url+"/test/sign-in-token", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		SignInToken string `json:"sign_in_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || m.SignInToken == "" {
		t.Fatalf("minting a sign-in token: %v", err)
	}
	return m.SignInToken
}
