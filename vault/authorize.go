package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/credvault/credvault/authtypes"
	"github.com/credvault/credvault/vault/auditlog"
)

// The authorization code flow with PKCE (RFC 6749 section 4.1, RFC 7636).
// StartAuthorization creates a single-use session holding the PKCE
// verifier (sealed like a secret) and returns the provider's URL with a
// signed state; the provider sends the user agent to the callback, which
// FinishAuthorization handles.

// AuthSession is a pending authorization. Its verifier is sealed.
type AuthSession struct {
	ID             string    `json:"id"`
	Credential     string    `json:"credential"`
	SecretVersion  int64     `json:"secret_version"`
	RedirectURI    string    `json:"redirect_uri"`
	SealedVerifier []byte    `json:"sealed_verifier"`
	ExpireTime     time.Time `json:"expire_time"`
}

// AuthorizationTTL bounds how long a started authorization stays valid.
const AuthorizationTTL = 10 * time.Minute

// ErrBadAuthorization means a callback's state or session is invalid,
// used or expired, or the credential changed since the flow started.
var ErrBadAuthorization = errors.New("invalid or expired authorization")

// Authorization is what StartAuthorization returns.
type Authorization struct {
	URL        string
	State      string
	ExpireTime time.Time
}

// StartAuthorization begins the authorization code flow for an OAuth 2.0
// credential with the authorization_code grant. callbackURL is the vault's
// own callback; redirectURI, when not empty, overrides the credential's.
func (v *Vault) StartAuthorization(ctx context.Context, name, callbackURL, redirectURI string) (*Authorization, error) {
	c, err := v.store.GetCredential(ctx, name)
	if err != nil {
		return nil, err
	}
	if c.Type != authtypes.TypeOAuth2 || c.OAuth2 == nil || c.OAuth2.GrantType != authtypes.GrantAuthorizationCode {
		return nil, &authtypes.ValidationError{Violations: []authtypes.FieldViolation{{
			Field: "name", Description: "is not an OAuth 2.0 credential with the authorization code grant"}}}
	}
	if redirectURI == "" {
		redirectURI = c.OAuth2.RedirectURI
	}
	if redirectURI == "" {
		redirectURI = callbackURL
	}
	if u, err := url.Parse(redirectURI); err != nil || !u.IsAbs() || u.Fragment != "" {
		return nil, &authtypes.ValidationError{Violations: []authtypes.FieldViolation{{
			Field: "redirect_uri", Description: "must be an absolute URL without a fragment"}}}
	}
	var id [16]byte
	rand.Read(id[:])
	now := v.clock.Now().UTC()
	s := &AuthSession{ID: hex.EncodeToString(id[:]), Credential: name, SecretVersion: c.Secret.Version,
		RedirectURI: redirectURI, ExpireTime: now.Add(AuthorizationTTL)}
	verifier := authtypes.NewVerifier()
	s.SealedVerifier, _, err = v.seal(ctx, sessionName(s.ID), 1, authtypes.Secret{Generic: &authtypes.GenericSecret{Value: verifier}})
	if err != nil {
		return nil, err
	}
	state := authtypes.SignState(v.stateKey, authtypes.StateClaims{
		Audience: stateAudience(callbackURL), Subject: s.ID, Credential: name,
		IssuedAt: now.Unix(), Expiry: s.ExpireTime.Unix()})
	ev := v.successEvent(ctx, name, map[string]string{"session": s.ID})
	if err := v.store.PutSession(ctx, s, ev); err != nil {
		return nil, err
	}
	v.recorded(ctx, ev)
	// Show the flow as pending, unless tokens already work.
	if c.Secret.TokenStatus != TokenStatusActive {
		_, _ = v.storeTokens(ctx, name, c.Secret.Version, nil, func(st *SecretState) {
			st.TokenStatus = TokenStatusPendingAuthorization
		}, 0, "oauth/authorization_started", auditlog.OutcomeSuccess, nil)
	}
	return &Authorization{URL: c.OAuth2.AuthCodeURL(state, verifier, redirectURI), State: state, ExpireTime: s.ExpireTime}, nil
}

func sessionName(id string) string { return "authorization_sessions/" + id }

// stateAudience is the audience of state tokens: the callback's base URL.
func stateAudience(callbackURL string) string {
	return strings.TrimSuffix(strings.TrimSuffix(callbackURL, "/oauth/callback"), "/")
}

// StateAudience is the audience the vault puts in state tokens for a
// callback URL, for the callback forwarder to compare against.
func StateAudience(callbackURL string) string { return stateAudience(callbackURL) }

// FinishAuthorization handles the provider's redirect: it verifies the
// state, consumes the session (single use), exchanges the code with the
// PKCE verifier and stores the tokens. It returns the credential's name.
func (v *Vault) FinishAuthorization(ctx context.Context, callbackURL, state, code string) (string, error) {
	now := v.clock.Now()
	claims, err := authtypes.VerifyState(v.stateKey, state, stateAudience(callbackURL), now)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadAuthorization, err)
	}
	ev := &auditlog.Event{Time: now, Caller: "credvaultd", Method: "oauth/callback", Resource: claims.Credential,
		Outcome: auditlog.OutcomeSuccess, Details: map[string]string{"session": claims.Subject}}
	s, err := v.store.TakeSession(ctx, claims.Subject, ev)
	if errors.Is(err, ErrNotFound) {
		return claims.Credential, fmt.Errorf("%w: the authorization was already used or does not exist", ErrBadAuthorization)
	}
	if err != nil {
		return claims.Credential, err
	}
	if now.After(s.ExpireTime) || s.Credential != claims.Credential {
		return s.Credential, fmt.Errorf("%w: expired", ErrBadAuthorization)
	}
	vs, err := v.openBlob(ctx, sessionName(s.ID), 1, s.SealedVerifier)
	if err != nil {
		return s.Credential, err
	}
	c, err := v.store.GetCredential(ctx, s.Credential)
	if err != nil {
		return s.Credential, err
	}
	if c.Secret.Version != s.SecretVersion || c.OAuth2 == nil {
		return s.Credential, fmt.Errorf("%w: the credential changed since the authorization started", ErrBadAuthorization)
	}
	secret, err := v.open(ctx, c)
	if err != nil {
		return s.Credential, err
	}
	tok, err := v.oauth.Exchanger.ExchangeCode(ctx, c.OAuth2, secret.OAuth2, code, vs.Generic.Value, s.RedirectURI)
	if err != nil {
		_, ferr := v.refreshFailed(ctx, c, secret, err)
		if ferr == nil {
			ferr = fmt.Errorf("%s: exchanging the code: %w", s.Credential, ErrRefreshFailed)
		}
		return s.Credential, ferr
	}
	next := *secret.OAuth2
	next.AccessToken, next.RefreshToken, next.Expiry = tok.AccessToken, tok.RefreshToken, v.expiry(c.OAuth2, tok, now)
	secret.OAuth2 = &next
	_, err = v.storeTokens(ctx, s.Credential, s.SecretVersion, &secret, func(st *SecretState) {
		st.TokenStatus, st.LastError = TokenStatusActive, ""
		st.LastRefreshTime, st.AccessTokenExpiry = now, next.Expiry
		st.HasRefreshToken = next.RefreshToken != ""
	}, 0, "oauth/authorized", auditlog.OutcomeSuccess, nil)
	return s.Credential, err
}
