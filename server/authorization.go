package server

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/credvault/credvault/authtypes"
	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/vault"
)

// CallbackPath is where the provider sends the user agent back.
const CallbackPath = "/oauth/callback"

// authorizationService implements AuthorizationService.
type authorizationService struct {
	credvaultv1.UnimplementedAuthorizationServiceServer
	s *Server
}

func (h *authorizationService) StartAuthorization(ctx context.Context, req *credvaultv1.StartAuthorizationRequest) (*credvaultv1.StartAuthorizationResponse, error) {
	var vs violations
	checkCredentialName(&vs, "name", req.GetName())
	if r := req.GetRedirectUri(); r != "" {
		if u, err := url.Parse(r); err != nil || !u.IsAbs() || len(r) > 2048 {
			vs.add("redirect_uri", "must be an absolute URL")
		}
	}
	if err := vs.err(); err != nil {
		return nil, err
	}
	a, err := h.s.vault.StartAuthorization(ctx, req.GetName(), h.s.callbackURL(), req.GetRedirectUri())
	if err != nil {
		return nil, h.s.status(ctx, err)
	}
	return &credvaultv1.StartAuthorizationResponse{AuthorizationUrl: a.URL, State: a.State, ExpireTime: timestamppb.New(a.ExpireTime)}, nil
}

func (s *Server) callbackURL() string {
	return strings.TrimSuffix(s.publicURL, "/") + CallbackPath
}

var callbackPage = template.Must(template.New("callback").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>credvault</title></head>
<body><h1>{{.Title}}</h1>{{if .Credential}}<p>Credential: <code>{{.Credential}}</code></p>{{end}}<p>{{.Message}}</p></body></html>
`))

type callbackResult struct {
	Title, Credential, Message string
}

// handleCallback finishes an authorization: GET /oauth/callback?code&state
// (or ?error&error_description&state). It answers with a small page that
// says what happened; provider text is shown escaped, never a token.
func (s *Server) handleCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	render := func(code int, res callbackResult) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		w.WriteHeader(code)
		_ = callbackPage.Execute(w, res)
	}
	state := q.Get("state")
	if perr := q.Get("error"); perr != "" {
		claims, _ := authtypes.PeekState(state)
		desc := q.Get("error_description")
		if len(desc) > 300 {
			desc = desc[:300]
		}
		s.log.WarnContext(r.Context(), "authorization refused by the provider", "credential", claims.Credential, "error", truncateField(perr))
		render(http.StatusBadRequest, callbackResult{Title: "Not connected", Credential: claims.Credential,
			Message: "The provider refused the authorization: " + truncateField(perr) + " " + desc})
		return
	}
	code := q.Get("code")
	if code == "" || state == "" || len(code) > 4096 {
		render(http.StatusBadRequest, callbackResult{Title: "Not connected", Message: "The callback is missing its code or state."})
		return
	}
	name, err := s.vault.FinishAuthorization(r.Context(), s.callbackURL(), state, code)
	switch {
	case err == nil:
		render(http.StatusOK, callbackResult{Title: "Connected", Credential: name, Message: "credvault now holds the tokens; you can close this page."})
	case errors.Is(err, vault.ErrBadAuthorization):
		render(http.StatusBadRequest, callbackResult{Title: "Not connected", Credential: name,
			Message: "This authorization is invalid, expired or already used. Start a new one."})
	case errors.Is(err, vault.ErrAuthorizationRequired):
		render(http.StatusBadRequest, callbackResult{Title: "Not connected", Credential: name,
			Message: "The provider refused the code exchange; start a new authorization."})
	default:
		s.log.ErrorContext(r.Context(), "finishing an authorization", "credential", name, "error", err.Error())
		render(http.StatusBadGateway, callbackResult{Title: "Not connected", Credential: name,
			Message: "The token request failed; try again later."})
	}
}

// CallbackForwarder wraps an application's existing OAuth redirect
// endpoint, for providers that allow a single redirect URI (credential
// sharing): a request whose state is a credvault state token for vaultBase
// (its unverified aud claim) is answered with 307 to the vault's callback
// with every query parameter; every other request goes to next. The vault
// verifies the state itself, so forwarding a forged one achieves nothing.
func CallbackForwarder(vaultBase string, next http.Handler) http.Handler {
	base := strings.TrimSuffix(vaultBase, "/")
	aud := vault.StateAudience(base + CallbackPath)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if claims, ok := authtypes.PeekState(r.URL.Query().Get("state")); ok && claims.Audience == aud {
			http.Redirect(w, r, base+CallbackPath+"?"+r.URL.RawQuery, http.StatusTemporaryRedirect)
			return
		}
		next.ServeHTTP(w, r)
	})
}
