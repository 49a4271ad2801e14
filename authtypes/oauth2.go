package authtypes

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// OAuth 2.0 (RFC 6749): the vault obtains the access token itself and
// places it as {token}, by default "Authorization: Bearer {token}". This
// file holds the type's definition, validation and the wire protocol:
// client credentials, authorization code with PKCE (RFC 7636), refresh,
// token exchange (RFC 8693), revocation (RFC 7009), and the signed state of
// the authorization code flow. Caching and persistence are the vault's.

// GrantType is how the vault obtains tokens. The numbers are the API's.
type GrantType int

// Grant types.
const (
	GrantUnspecified       GrantType = 0
	GrantClientCredentials GrantType = 1
	GrantAuthorizationCode GrantType = 2
	GrantRefreshToken      GrantType = 3
	GrantTokenExchange     GrantType = 4
)

var grantNames = enumText[GrantType]{what: "grant type", names: map[GrantType]string{
	GrantClientCredentials: "client_credentials", GrantAuthorizationCode: "authorization_code",
	GrantRefreshToken: "refresh_token", GrantTokenExchange: "token_exchange"}}

func (g GrantType) String() string { return grantNames.String(g) }

// MarshalText encodes a grant type by name.
func (g GrantType) MarshalText() ([]byte, error) { return grantNames.marshal(g) }

// UnmarshalText decodes a grant type name.
func (g *GrantType) UnmarshalText(b []byte) error { return grantNames.unmarshal(b, g) }

// AuthStyle is how the client authenticates at the token endpoint.
type AuthStyle int

// Client authentication styles; the numbers are the API's.
const (
	// AuthStyleAutoDetect tries client_secret_basic, then client_secret_post.
	AuthStyleAutoDetect AuthStyle = 0
	// AuthStyleInHeader is client_secret_basic.
	AuthStyleInHeader AuthStyle = 1
	// AuthStyleInParams is client_secret_post.
	AuthStyleInParams AuthStyle = 2
)

// OAuth2Config is the non-secret configuration of an OAuth 2.0 credential.
type OAuth2Config struct {
	GrantType        GrantType         `json:"grant_type"`
	TokenURL         string            `json:"token_url"`
	AuthURL          string            `json:"auth_url,omitempty"`
	RevocationURL    string            `json:"revocation_url,omitempty"`
	ClientID         string            `json:"client_id"`
	Scopes           []string          `json:"scopes,omitempty"`
	Audience         string            `json:"audience,omitempty"`
	ExtraParams      map[string]string `json:"extra_params,omitempty"`
	AuthStyle        AuthStyle         `json:"auth_style,omitempty"`
	RedirectURI      string            `json:"redirect_uri,omitempty"`
	SubjectTokenType string            `json:"subject_token_type,omitempty"`
	// DefaultLifetime overrides the vault's default when a provider omits
	// expires_in and the access token carries no JWT exp.
	DefaultLifetime time.Duration `json:"default_lifetime,omitempty"`
	// RefreshJitter refreshes up to this much earlier than the margin,
	// differently per token, so one provider's tokens do not all expire
	// into one burst of refreshes.
	RefreshJitter time.Duration `json:"refresh_jitter,omitempty"`
}

// OAuth2Secret is the secret part: the client secret and the tokens.
// SignInToken is exchanged at write time and never stored.
type OAuth2Secret struct {
	ClientSecret string    `json:"client_secret,omitempty"`
	AccessToken  string    `json:"access_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	SignInToken  string    `json:"-"`
	// PreviousRefreshToken is the refresh token before the last rotation,
	// kept for a short grace period: providers with a reuse leeway accept
	// it if the rotated one was lost.
	PreviousRefreshToken string    `json:"-"`
	RotatedAt            time.Time `json:"-"`
	// AdditionalClientSecrets are tried in order after ClientSecret when the
	// provider answers invalid_client: a client secret can be rotated at
	// the provider without downtime.
	AdditionalClientSecrets []string `json:"-"`
}

type oauth2Kind struct{}

func (oauth2Kind) secretField() string    { return "oauth2" }
func (oauth2Kind) placeholders() []string { return []string{"token"} }

func (oauth2Kind) defaultPlacement() []ParameterTemplate {
	return []ParameterTemplate{{Location: LocationHeader, Name: "Authorization", ValueTemplate: "Bearer {token}"}}
}

func (oauth2Kind) validateSecret(prefix string, s Secret, _ Definition) []FieldViolation {
	o := s.OAuth2
	var vs []FieldViolation
	if len(o.AdditionalClientSecrets) > 4 {
		vs = append(vs, FieldViolation{Field: prefix + ".additional_client_secrets", Description: "at most 4"})
	}
	for i, cs := range o.AdditionalClientSecrets {
		vs = append(vs, checkSecretValue(fmt.Sprintf("%s.additional_client_secrets[%d]", prefix, i), cs, true)...)
	}
	for _, f := range []struct{ name, v string }{{"client_secret", o.ClientSecret}, {"access_token", o.AccessToken},
		{"refresh_token", o.RefreshToken}, {"sign_in_token", o.SignInToken}} {
		vs = append(vs, checkSecretValue(prefix+"."+f.name, f.v, false)...)
	}
	return vs
}

// ValidateOAuth2Secret checks what a grant needs from the secret. The
// vault calls it with the definition at hand.
func ValidateOAuth2Secret(prefix string, c *OAuth2Config, o *OAuth2Secret) []FieldViolation {
	if c == nil || o == nil {
		return nil
	}
	switch c.GrantType {
	case GrantClientCredentials:
		if o.ClientSecret == "" {
			return []FieldViolation{{Field: prefix + ".client_secret", Description: "is required for the client_credentials grant"}}
		}
	case GrantRefreshToken, GrantTokenExchange:
		if o.AccessToken == "" && o.RefreshToken == "" && o.SignInToken == "" {
			return []FieldViolation{{Field: prefix, Description: "needs an access_token, a refresh_token or a sign_in_token for this grant"}}
		}
	}
	return nil
}

func (oauth2Kind) value(s Secret, name string) (string, bool) {
	if name != "token" {
		return "", false
	}
	return s.OAuth2.AccessToken, true
}

// fields stores the client secret, the tokens, the expiry, the grace slot
// and then the additional client secrets. The sign-in token is never
// stored.
func (oauth2Kind) fields(s Secret) []string {
	o := s.OAuth2
	return append([]string{o.ClientSecret, o.AccessToken, o.RefreshToken, encodeTime(o.Expiry), o.PreviousRefreshToken, encodeTime(o.RotatedAt)},
		o.AdditionalClientSecrets...)
}

func (oauth2Kind) fromFields(f []string) (Secret, bool) {
	if len(f) < 6 {
		return Secret{}, false
	}
	o := &OAuth2Secret{ClientSecret: f[0], AccessToken: f[1], RefreshToken: f[2], PreviousRefreshToken: f[4]}
	if len(f) > 6 {
		o.AdditionalClientSecrets = f[6:]
	}
	var ok1, ok2 bool
	o.Expiry, ok1 = decodeTime(f[3])
	o.RotatedAt, ok2 = decodeTime(f[5])
	return Secret{OAuth2: o}, ok1 && ok2
}

// encodeTime is Unix nanoseconds in decimal, "" for the zero time.
func encodeTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

func decodeTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, n).UTC(), true
}

// validateOAuth2Config checks the OAuth 2.0 configuration.
func validateOAuth2Config(prefix string, c *OAuth2Config) []FieldViolation {
	if c == nil {
		return []FieldViolation{{Field: prefix, Description: "is required for CREDENTIAL_TYPE_OAUTH2"}}
	}
	var vs []FieldViolation
	bad := func(field, desc string) {
		vs = append(vs, FieldViolation{Field: prefix + "." + field, Description: desc})
	}
	if !grantNames.known(c.GrantType) {
		bad("grant_type", "must be one of GRANT_TYPE_CLIENT_CREDENTIALS, _AUTHORIZATION_CODE, _REFRESH_TOKEN, _TOKEN_EXCHANGE")
	}
	if c.TokenURL == "" {
		bad("token_url", "is required")
	} else if err := checkEndpoint(c.TokenURL); err != "" {
		bad("token_url", err)
	}
	if c.GrantType == GrantAuthorizationCode && c.AuthURL == "" {
		bad("auth_url", "is required for the authorization code grant")
	}
	for field, u := range map[string]string{"auth_url": c.AuthURL, "revocation_url": c.RevocationURL} {
		if u != "" {
			if err := checkEndpoint(u); err != "" {
				bad(field, err)
			}
		}
	}
	if c.RedirectURI != "" {
		if u, err := url.Parse(c.RedirectURI); err != nil || !u.IsAbs() || u.Fragment != "" || len(c.RedirectURI) > 2048 {
			bad("redirect_uri", "must be an absolute URL without a fragment")
		}
	}
	if c.ClientID == "" || len(c.ClientID) > 1024 || strings.ContainsAny(c.ClientID, "\r\n\x00") {
		bad("client_id", "is required, at most 1024 bytes, without CR, LF or NUL")
	}
	if len(c.Scopes) > 64 {
		bad("scopes", "at most 64 scopes")
	}
	for i, s := range c.Scopes {
		if s == "" || len(s) > 256 || strings.ContainsAny(s, " \r\n\x00\"\\") {
			bad(fmt.Sprintf("scopes[%d]", i), "must be a non-empty scope token without spaces or quotes (RFC 6749 section 3.3)")
		}
	}
	if len(c.Audience) > 1024 || strings.ContainsAny(c.Audience, "\r\n\x00") {
		bad("audience", "at most 1024 bytes, without CR, LF or NUL")
	}
	reserved := map[string]bool{"grant_type": true, "client_id": true, "client_secret": true, "code": true, "code_verifier": true,
		"redirect_uri": true, "refresh_token": true, "subject_token": true, "state": true, "code_challenge": true}
	if len(c.ExtraParams) > 32 {
		bad("extra_params", "at most 32 parameters")
	}
	for k, v := range c.ExtraParams {
		switch {
		case k == "" || len(k) > 128 || strings.ContainsAny(k, "\r\n\x00"):
			bad("extra_params", "keys must be 1 to 128 bytes without CR, LF or NUL")
		case reserved[k]:
			bad("extra_params", "must not set the protocol parameter "+k)
		case len(v) > 1024 || strings.ContainsAny(v, "\r\n\x00"):
			bad("extra_params["+k+"]", "at most 1024 bytes, without CR, LF or NUL")
		}
	}
	if c.AuthStyle < AuthStyleAutoDetect || c.AuthStyle > AuthStyleInParams {
		bad("auth_style", "must be AUTH_STYLE_UNSPECIFIED, _IN_HEADER or _IN_PARAMS")
	}
	if len(c.SubjectTokenType) > 256 {
		bad("subject_token_type", "at most 256 bytes")
	}
	if c.DefaultLifetime != 0 && (c.DefaultLifetime < time.Second || c.DefaultLifetime > 30*24*time.Hour) {
		bad("default_lifetime", "must be between 1s and 30 days")
	}
	if c.RefreshJitter < 0 || c.RefreshJitter > time.Hour {
		bad("refresh_jitter", "must be between 0 and 1h")
	}
	return vs
}

// checkEndpoint requires an absolute https URL; plain http is allowed only
// to loopback hosts (tests, a local sidecar). It returns what is wrong.
func checkEndpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || len(raw) > 2048 {
		return "must be an absolute https URL"
	}
	if u.User != nil || u.Fragment != "" {
		return "must not carry user info or a fragment"
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || ip != nil && ip.IsLoopback() {
			return ""
		}
	}
	return "must be an https URL (http only to a loopback host)"
}

// ---- The wire protocol ----

// Token is what a token endpoint returned. AccessToken and RefreshToken
// are secrets.
type Token struct {
	AccessToken  string
	RefreshToken string // empty when the provider did not send one
	// Lifetime is expires_in; zero when the provider omitted it. The caller
	// turns it into an expiry with its own clock.
	Lifetime time.Duration
}

// Failure says what a failed token request means for the credential. Each
// maps to its own ErrorInfo reason in the API.
type Failure int

const (
	// FailureTransient may pass: a network error, a timeout, 429 or 5xx.
	FailureTransient Failure = iota
	// FailureReauthorize means the grant is gone (invalid_grant, or no
	// refresh token): a human must authorize again.
	FailureReauthorize
	// FailureClient means the client itself was refused (invalid_client,
	// unauthorized_client, ...): fix the client id or secret; the grant
	// may still be fine.
	FailureClient
	// FailureMalformed means the provider answered something that is not a
	// token response.
	FailureMalformed
)

// ProtocolError is an RFC 6749 section 5.2 error from a token or
// revocation endpoint (also when a provider sends it in an HTTP 200 body,
// as GitHub does). It keeps the error code and description only, never the
// raw response body (which x/oauth2's RetrieveError.Error() prints, and
// which may echo what was sent).
type ProtocolError struct {
	Code        string
	Description string
	HTTPStatus  int
}

func (e *ProtocolError) Error() string {
	msg := "oauth2: " + truncate(e.Code, 64)
	if e.Description != "" {
		msg += ": " + truncate(e.Description, 200)
	}
	return msg
}

// reauthorizeCodes mean the grant (refresh token, code) is dead. GitHub
// spells invalid_grant its own ways.
var reauthorizeCodes = map[string]bool{"invalid_grant": true, "bad_refresh_token": true, "bad_verification_code": true,
	"expired_token": true, "no_refresh_token": true}

// Failure classifies the error.
func (e *ProtocolError) Failure() Failure {
	switch {
	case reauthorizeCodes[e.Code]:
		return FailureReauthorize
	case e.HTTPStatus == http.StatusTooManyRequests || e.HTTPStatus >= 500 || e.Code == "temporarily_unavailable" || e.Code == "server_error" || e.Code == "slow_down":
		return FailureTransient
	}
	return FailureClient
}

// Permanent reports whether retrying cannot help.
func (e *ProtocolError) Permanent() bool { return e.Failure() != FailureTransient }

// Classify says what err, from an Exchanger, means for the credential.
func Classify(err error) Failure {
	var pe *ProtocolError
	switch {
	case errors.As(err, &pe):
		return pe.Failure()
	case errors.Is(err, ErrMalformedResponse):
		return FailureMalformed
	}
	return FailureTransient
}

// ErrMalformedResponse means a token endpoint answered 2xx with something
// that is not a token response (no access_token, not JSON or form).
var ErrMalformedResponse = errors.New("malformed token response")

// ErrTokenEndpoint wraps failures that may pass: network errors, timeouts,
// 5xx responses, unparseable answers.
var ErrTokenEndpoint = errors.New("token endpoint unavailable")

// Exchanger talks to token endpoints. The zero value works: each attempt
// is bounded by a 10 s client timeout, and transient failures are tried 3
// times. It keeps no context and no token: callers pass ctx on each call.
// It is safe for concurrent use.
type Exchanger struct {
	HTTPClient *http.Client
	Attempts   int
	// Backoff before retry n (from 1); default 100ms·4^(n-1).
	Backoff func(n int) time.Duration

	// styles remembers, per token URL, the client authentication style
	// that auto-detection found (x/oauth2 keeps it per Config, which we do
	// not keep between calls).
	styles sync.Map // token URL -> oauth2.AuthStyle
}

func (x *Exchanger) client() *http.Client {
	if x != nil && x.HTTPClient != nil {
		return x.HTTPClient
	}
	return defaultHTTPClient
}

var defaultHTTPClient = &http.Client{Timeout: 10 * time.Second}

// do runs one token request with bounded retries on transient failures.
// A protocol error (4xx) is never retried: retrying invalid_grant cannot
// help. When ambiguousSafe is false (refresh with rotation, single-use
// codes) a failure after the request may have reached the provider is not
// retried either: resending a refresh token the provider already rotated
// would trip its reuse detection and revoke the grant. Only 5xx answers and
// failures to connect are retried then.
//
// Client authentication auto-detection (AuthStyleAutoDetect) tries
// client_secret_basic first and switches to client_secret_post only on
// invalid_client, remembering the answer per token URL. (x/oauth2's own
// auto-detection retries on any error, which would send a rotating
// refresh token twice.)
func (x *Exchanger) do(ctx context.Context, c *OAuth2Config, attempts int, ambiguousSafe bool, fn func(context.Context, oauth2.AuthStyle) (*oauth2.Token, error)) (*Token, error) {
	backoff := func(n int) time.Duration {
		d := 100 * time.Millisecond << (2 * (n - 1))
		return d/2 + time.Duration(rand.Int64N(int64(d))) // jitter: 50%-150%
	}
	if x.Backoff != nil {
		backoff = x.Backoff
	}
	var wait time.Duration
	ctx = context.WithValue(ctx, oauth2.HTTPClient, x.client())
	style, detecting := x.style(c)
	var last error
	for n := 1; n <= attempts; n++ {
		if n > 1 {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %w", ErrTokenEndpoint, ctx.Err())
			case <-time.After(max(wait, backoff(n-1))):
			}
		}
		t, err := fn(ctx, style)
		if err == nil {
			if detecting {
				x.styles.Store(c.TokenURL, style)
			}
			if t.AccessToken == "" {
				return nil, fmt.Errorf("%w: the response has no access_token", ErrMalformedResponse)
			}
			return &Token{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, Lifetime: lifetime(t)}, nil
		}
		last, wait = classify(err), retryAfter(err)
		var pe *ProtocolError
		if errors.As(last, &pe) {
			if detecting && style == oauth2.AuthStyleInHeader && pe.Code == "invalid_client" {
				style, n = oauth2.AuthStyleInParams, n-1 // not a retry: the other style
				continue
			}
			if pe.Permanent() {
				return nil, last
			}
		}
		if errors.Is(last, ErrMalformedResponse) || !ambiguousSafe && !retryable(err) {
			return nil, last
		}
	}
	return nil, last
}

// lifetime is expires_in. x/oauth2's clientcredentials keeps only the
// expiry it computed on the wall clock, so fall back to that.
func lifetime(t *oauth2.Token) time.Duration {
	if t.ExpiresIn > 0 {
		return time.Duration(t.ExpiresIn) * time.Second
	}
	if t.Expiry.IsZero() {
		return 0
	}
	return max(time.Until(t.Expiry).Round(time.Second), time.Second)
}

// style is the client authentication style to use, and whether it is
// still being detected.
func (x *Exchanger) style(c *OAuth2Config) (oauth2.AuthStyle, bool) {
	switch c.AuthStyle {
	case AuthStyleInHeader:
		return oauth2.AuthStyleInHeader, false
	case AuthStyleInParams:
		return oauth2.AuthStyleInParams, false
	}
	if s, ok := x.styles.Load(c.TokenURL); ok {
		return s.(oauth2.AuthStyle), false
	}
	return oauth2.AuthStyleInHeader, true
}

// retryable reports whether a failed request certainly did not change
// anything at the provider: a 5xx answer, or no connection at all.
func retryable(err error) bool {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.Response != nil && (re.Response.StatusCode >= 500 || re.Response.StatusCode == http.StatusTooManyRequests)
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func (x *Exchanger) attempts() int {
	if x.Attempts > 0 {
		return x.Attempts
	}
	return 3
}

// classify turns an x/oauth2 error into a ProtocolError (by type, never by
// string), ErrMalformedResponse, or a wrapped ErrTokenEndpoint. None keeps
// the response body.
func classify(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		switch {
		case re.ErrorCode != "":
			return &ProtocolError{Code: re.ErrorCode, Description: re.ErrorDescription, HTTPStatus: status}
		case status == http.StatusTooManyRequests || status >= 500:
			return &ProtocolError{Code: "temporarily_unavailable", Description: fmt.Sprintf("HTTP %d", status), HTTPStatus: status}
		case status >= 200 && status < 300:
			return fmt.Errorf("%w: HTTP %d", ErrMalformedResponse, status)
		}
		return &ProtocolError{Code: "http_" + strconv.Itoa(status), HTTPStatus: status}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%w: %s %s: %v", ErrTokenEndpoint, ue.Op, redactURL(ue.URL), ue.Err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %w", ErrTokenEndpoint, err)
	}
	// x/oauth2's own errors: "server response missing access_token",
	// unparseable bodies.
	return fmt.Errorf("%w: %v", ErrMalformedResponse, err)
}

// retryAfter is the wait a 429 or 503 asked for (RFC 9110 section 10.2.3,
// seconds form), capped.
func retryAfter(err error) time.Duration {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		return 0
	}
	secs, perr := strconv.Atoi(strings.TrimSpace(re.Response.Header.Get("Retry-After")))
	if perr != nil || secs <= 0 {
		return 0
	}
	return min(time.Duration(secs)*time.Second, maxRetryAfter)
}

// maxRetryAfter caps how long a Retry-After may hold a request.
const maxRetryAfter = 10 * time.Second

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<url>"
	}
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	return u.String()
}

func (c *OAuth2Config) endpointParams() url.Values {
	v := url.Values{}
	for k, val := range c.ExtraParams {
		v.Set(k, val)
	}
	if c.Audience != "" {
		v.Set("audience", c.Audience)
	}
	return v
}

// config is the x/oauth2 view of the credential.
func (c *OAuth2Config) config(s *OAuth2Secret, redirectURI string, style oauth2.AuthStyle) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     c.ClientID,
		ClientSecret: s.ClientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: c.AuthURL, TokenURL: c.TokenURL, AuthStyle: style},
		RedirectURL:  redirectURI,
		Scopes:       c.Scopes,
	}
}

// scrub removes from a provider's error description any secret the
// request carried: a provider that echoes what it was sent must not put a
// token into last_error, a log line or an audit event.
func scrub(err error, s *OAuth2Secret, more ...string) error {
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		return err
	}
	for _, secret := range append([]string{s.ClientSecret, s.RefreshToken, s.AccessToken, s.SignInToken}, append(s.AdditionalClientSecrets, more...)...) {
		if len(secret) >= 4 && (strings.Contains(pe.Description, secret) || strings.Contains(pe.Code, secret)) {
			pe.Description = strings.ReplaceAll(pe.Description, secret, "[redacted]")
			pe.Code = strings.ReplaceAll(pe.Code, secret, "[redacted]")
		}
	}
	return err
}

// withEachClientSecret runs call with the client secret, then with each
// additional one while the provider answers invalid_client: the client
// authentication failed before the grant was looked at, so nothing was
// consumed and trying the next secret is safe.
func withEachClientSecret(s *OAuth2Secret, call func(*OAuth2Secret) (*Token, error)) (*Token, error) {
	tok, err := call(s)
	for _, next := range s.AdditionalClientSecrets {
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Code != "invalid_client" {
			break
		}
		alt := *s
		alt.ClientSecret = next
		tok, err = call(&alt)
	}
	return tok, scrub(err, s)
}

// ClientCredentials obtains a token with the client_credentials grant
// (RFC 6749 section 4.4).
func (x *Exchanger) ClientCredentials(ctx context.Context, c *OAuth2Config, s *OAuth2Secret) (*Token, error) {
	return withEachClientSecret(s, func(s *OAuth2Secret) (*Token, error) { return x.clientCredentials(ctx, c, s) })
}

func (x *Exchanger) clientCredentials(ctx context.Context, c *OAuth2Config, s *OAuth2Secret) (*Token, error) {
	return x.do(ctx, c, x.attempts(), true, func(ctx context.Context, style oauth2.AuthStyle) (*oauth2.Token, error) {
		cc := &clientcredentials.Config{ClientID: c.ClientID, ClientSecret: s.ClientSecret, TokenURL: c.TokenURL,
			Scopes: c.Scopes, EndpointParams: c.endpointParams(), AuthStyle: style}
		return cc.Token(ctx)
	})
}

// Refresh redeems the refresh token (RFC 6749 section 6). The provider may
// rotate it: a returned RefreshToken replaces the old one, which is dead.
// A refresh is not retried once the provider answered with an error.
func (x *Exchanger) Refresh(ctx context.Context, c *OAuth2Config, s *OAuth2Secret) (*Token, error) {
	return withEachClientSecret(s, func(s *OAuth2Secret) (*Token, error) {
		return x.do(ctx, c, x.attempts(), false, func(ctx context.Context, style oauth2.AuthStyle) (*oauth2.Token, error) {
			return c.config(s, "", style).TokenSource(ctx, &oauth2.Token{RefreshToken: s.RefreshToken}).Token()
		})
	})
}

// AuthCodeURL is the authorization request URL (RFC 6749 section 4.1.1)
// with the PKCE S256 challenge of verifier (RFC 7636 section 4.2).
func (c *OAuth2Config) AuthCodeURL(state, verifier, redirectURI string) string {
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	for k, v := range c.ExtraParams {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	if c.Audience != "" {
		opts = append(opts, oauth2.SetAuthURLParam("audience", c.Audience))
	}
	return c.config(&OAuth2Secret{}, redirectURI, oauth2.AuthStyleAutoDetect).AuthCodeURL(state, opts...)
}

// NewVerifier returns a PKCE code verifier, "a high-entropy cryptographic
// random STRING" of 43 characters (RFC 7636 section 4.1).
func NewVerifier() string { return oauth2.GenerateVerifier() }

// ExchangeCode redeems an authorization code with its PKCE verifier. A
// code is single use, so the request is made once.
func (x *Exchanger) ExchangeCode(ctx context.Context, c *OAuth2Config, s *OAuth2Secret, code, verifier, redirectURI string) (*Token, error) {
	return withEachClientSecret(s, func(s *OAuth2Secret) (*Token, error) {
		return x.do(ctx, c, 1, false, func(ctx context.Context, style oauth2.AuthStyle) (*oauth2.Token, error) {
			return c.config(s, redirectURI, style).Exchange(ctx, code, oauth2.VerifierOption(verifier))
		})
	})
}

// TokenExchange trades a one-time sign-in token for tokens with the RFC
// 8693 token-exchange grant (x/oauth2's clientcredentials lets the
// endpoint parameters override grant_type). Single use: made once.
func (x *Exchanger) TokenExchange(ctx context.Context, c *OAuth2Config, s *OAuth2Secret, subjectToken string) (*Token, error) {
	params := c.endpointParams()
	params.Set("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")
	params.Set("subject_token", subjectToken)
	typ := c.SubjectTokenType
	if typ == "" {
		typ = "urn:ietf:params:oauth:token-type:access_token"
	}
	params.Set("subject_token_type", typ)
	tok, err := x.do(ctx, c, 1, false, func(ctx context.Context, style oauth2.AuthStyle) (*oauth2.Token, error) {
		cc := &clientcredentials.Config{ClientID: c.ClientID, ClientSecret: s.ClientSecret, TokenURL: c.TokenURL,
			Scopes: c.Scopes, EndpointParams: params, AuthStyle: style}
		return cc.Token(ctx)
	})
	return tok, scrub(err, s, subjectToken)
}

// Revoke revokes token at the revocation endpoint (RFC 7009),
// authenticating the client as at the token endpoint. hint is
// "refresh_token" or "access_token".
func (x *Exchanger) Revoke(ctx context.Context, c *OAuth2Config, s *OAuth2Secret, token, hint string) error {
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	inParams := c.AuthStyle == AuthStyleInParams
	if inParams || s.ClientSecret == "" {
		form.Set("client_id", c.ClientID)
		if s.ClientSecret != "" {
			form.Set("client_secret", s.ClientSecret)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.RevocationURL, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("%w: building the revocation request", ErrTokenEndpoint)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if !inParams && s.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(s.ClientSecret))
	}
	resp, err := x.client().Do(req)
	if err != nil {
		return classify(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return scrub(&ProtocolError{Code: e.Error, Description: e.Description, HTTPStatus: resp.StatusCode}, s, token)
	}
	return fmt.Errorf("%w: revocation answered HTTP %d", ErrTokenEndpoint, resp.StatusCode)
}

// ---- The authorization code flow's state (a signed JWT, RFC 7519) ----

// StateClaims are the claims of the state parameter of an authorization
// request. The state is a JWT signed with HS256 under a vault-internal key:
// its audience is the vault's callback base URL, its subject the
// authorization session (single use), and it names the credential.
type StateClaims struct {
	Issuer     string `json:"iss"`
	Audience   string `json:"aud"`
	Subject    string `json:"sub"`
	Credential string `json:"credential"`
	IssuedAt   int64  `json:"iat"`
	Expiry     int64  `json:"exp"`
}

// stateIssuer marks a state token as credvault's.
const stateIssuer = "credvault"

// stateHeader is the only JOSE header credvault signs or accepts: a token
// claiming another algorithm (none, RS256…) is refused before any check.
var stateHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// maxStateLen bounds what the parsers look at.
const maxStateLen = 4096

// SignState returns the state JWT for claims (Issuer is set to credvault).
func SignState(key []byte, c StateClaims) string {
	c.Issuer = stateIssuer
	payload, _ := json.Marshal(c)
	signing := stateHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// ErrBadState means a state parameter is not a valid credvault state for
// this vault: malformed, wrongly signed, for another audience, or expired.
var ErrBadState = errors.New("invalid authorization state")

// PeekState parses a state's claims WITHOUT checking its signature. Only
// for routing (the callback forwarder): never trust what it returns.
func PeekState(token string) (StateClaims, bool) {
	var c StateClaims
	if len(token) > maxStateLen {
		return c, false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] != stateHeader {
		return c, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &c) != nil || c.Issuer != stateIssuer {
		return StateClaims{}, false
	}
	return c, true
}

// VerifyState checks a state's signature, issuer, audience and expiry and
// returns its claims.
func VerifyState(key []byte, token, audience string, now time.Time) (StateClaims, error) {
	c, ok := PeekState(token)
	if !ok {
		return StateClaims{}, fmt.Errorf("%w: malformed", ErrBadState)
	}
	i := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil {
		return StateClaims{}, fmt.Errorf("%w: malformed signature", ErrBadState)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(token[:i]))
	if !hmac.Equal(sig, m.Sum(nil)) {
		return StateClaims{}, fmt.Errorf("%w: bad signature", ErrBadState)
	}
	if c.Audience != audience {
		return StateClaims{}, fmt.Errorf("%w: issued for another vault", ErrBadState)
	}
	if now.Unix() >= c.Expiry {
		return StateClaims{}, fmt.Errorf("%w: expired", ErrBadState)
	}
	return c, nil
}

// JWTExpiry returns the exp claim of an access token that is a JWT, read
// without verifying it (only to learn a lifetime the provider did not
// state), or false.
func JWTExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(token) > 16<<10 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return time.Time{}, false
	}
	exp, err := claims.Exp.Int64()
	if err != nil || exp <= 0 {
		return time.Time{}, false
	}
	return time.Unix(exp, 0).UTC(), true
}
