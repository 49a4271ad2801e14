package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKill9DuringRefreshStorm kills the daemon with SIGKILL while a storm
// of resolves refreshes an OAuth 2.0 credential against the real provider
// (with refresh-token rotation and reuse detection). After a restart the
// credential resolves, or is AUTHORIZATION_REQUIRED with a clear
// last_error — never an unreadable record.
func TestKill9DuringRefreshStorm(t *testing.T) {
	httpAddr := freeAddr(t)
	idp := startOAuthServer(t, []string{"http://" + httpAddr + "/oauth/callback"}, "ACCESS_TOKEN_TTL=2")
	dir := t.TempDir()
	d := startDaemonAt(t, dir, nil, httpAddr)
	admin := d.adminToken(t)
	app := mintResolver(t, d, admin, "app")
	d.mustGRPC(t, admin, "credvault.v1.CredentialService/CreateCredential", fmt.Sprintf(`{"credential_id": "web", "credential": {"type": "CREDENTIAL_TYPE_OAUTH2",
		"allowed_callers": ["callers/app"], "oauth2": {"grant_type": "GRANT_TYPE_AUTHORIZATION_CODE", "token_url": %q, "auth_url": %q,
		"client_id": "web-client", "scopes": ["openid"]}}, "secret": {"oauth2": {"client_secret": "web-secret"}}}`, idp.url+"/token", idp.url+"/auth"))
	start := d.mustGRPC(t, admin, "credvault.v1.AuthorizationService/StartAuthorization", `{"name": "credentials/web"}`)
	if page := followAuthorization(t, start["authorizationUrl"].(string)); !strings.Contains(page, "Connected") {
		t.Fatalf("authorization: %s", page)
	}
	time.Sleep(2200 * time.Millisecond) // the access token expires
	before := count(idp.stats(t), "token", "refresh_token")
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.grpcurl(t, app, "credvault.v1.ResolverService/ResolveCredential", `{"name": "credentials/web"}`)
		}()
	}
	// Kill as soon as the provider has seen the refresh request.
	deadline := time.Now().Add(10 * time.Second)
	for count(idp.stats(t), "token", "refresh_token") == before && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	d.kill(t)
	wg.Wait()

	d2 := startDaemonAt(t, dir, nil, httpAddr)
	time.Sleep(500 * time.Millisecond) // the start-up retry of a cut-off refresh runs in the background
	out, stderr, code := d2.grpcurl(t, app, "credvault.v1.ResolverService/ResolveCredential", `{"name": "credentials/web"}`)
	got := d2.mustGRPC(t, admin, "credvault.v1.CredentialService/GetCredential", `{"name": "credentials/web"}`)
	st, _ := got["secretStatus"].(map[string]any)
	switch {
	case code == 0 && strings.Contains(out, "Bearer "):
		t.Logf("after kill -9 mid-refresh: the credential resolves (status %v)", st["tokenStatus"])
	case code == 64+9 && strings.Contains(stderr, "AUTHORIZATION_REQUIRED"):
		if st["tokenStatus"] != "TOKEN_STATUS_AUTHORIZATION_REQUIRED" || !strings.Contains(fmt.Sprint(st["lastError"]), "stopped during a refresh") {
			t.Errorf("AUTHORIZATION_REQUIRED without a clear status: %v", st)
		}
		t.Logf("after kill -9 mid-refresh: AUTHORIZATION_REQUIRED, last_error %q", st["lastError"])
	default:
		b, _ := json.Marshal(st)
		t.Errorf("after kill -9 mid-refresh: exit %d %s %s; status %s", code, out, stderr, b)
	}
}
