package authtypes

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzTokenResponse feeds arbitrary token-endpoint answers to the
// exchanger: it never panics, never returns a token without an access
// token, and its errors never carry the body.
func FuzzTokenResponse(f *testing.F) {
	f.Add(200, "application/json", `{"access_token":"a","expires_in":60,"refresh_token":"r"}`)
	f.Add(200, "application/json", `{"error":"bad_refresh_token"}`)
	f.Add(400, "application/json", `{"error":"invalid_grant","error_description":"x"}`)
	f.Add(200, "application/x-www-form-urlencoded", `access_token=a&expires_in=5`)
	f.Add(503, "text/html", `<html>down</html>`)
	f.Add(200, "application/json", `{"access_token":123}`)
	f.Fuzz(func(t *testing.T, status int, contentType, body string) {
		if status < 200 || status > 599 {
			return
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			w.Write([]byte(body))
		}))
		defer srv.Close()
		x := &Exchanger{Attempts: 1, HTTPClient: &http.Client{Timeout: 2 * time.Second}}
		tok, err := x.Refresh(context.Background(), &OAuth2Config{TokenURL: srv.URL, ClientID: "c", AuthStyle: AuthStyleInParams},
			&OAuth2Secret{RefreshToken: "SECRET-REFRESH"})
		if err == nil && tok.AccessToken == "" {
			t.Fatal("a token without an access token")
		}
		if err != nil && (strings.Contains(err.Error(), "SECRET-REFRESH") || len(body) > 40 && strings.Contains(err.Error(), body)) {
			t.Fatalf("the error carries the request or the body: %v", err)
		}
		_ = Classify(err)
		_ = errors.Is(err, ErrMalformedResponse)
	})
}
