package vault

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/credvault/credvault/authtypes"
	"github.com/credvault/credvault/vault/auditlog"
)

// This file is the OAuth 2.0 lifecycle's coordination: when to use the
// cached access token, one token request per credential at a time, and
// persisting what the provider returned before anyone sees it. The wire
// protocol is authtypes'.

// OAuthConfig tunes the OAuth 2.0 lifecycle.
type OAuthConfig struct {
	// Exchanger talks to token endpoints (timeouts and retries).
	Exchanger *authtypes.Exchanger
	// Skew is the most an access token may have left and still be
	// refreshed (default 60s). The margin used is the smaller of Skew and
	// half the token's lifetime, so short-lived tokens are still cached.
	Skew time.Duration
	// DefaultLifetime is assumed when a provider omits expires_in
	// (default 1h).
	DefaultLifetime time.Duration
	// ForceRefreshInterval is the least time between two refreshes that a
	// caller forces (default 10s): a target that keeps answering 401 must
	// not turn into a refresh storm.
	ForceRefreshInterval time.Duration
	// FlightTimeout bounds one refresh, whoever waits for it (default 30s).
	FlightTimeout time.Duration
	// RefreshGrace is how long the refresh token before a rotation is kept
	// and tried if the current one is refused (default 2m).
	RefreshGrace time.Duration
	// AfterTokenResponse, when set, runs after a token endpoint answered
	// and before the result is committed; an error abandons the refresh as
	// if the process had died there. A fault-injection hook for tests.
	AfterTokenResponse func(credential string) error
}

func (c *OAuthConfig) withDefaults() OAuthConfig {
	out := OAuthConfig{}
	if c != nil {
		out = *c
	}
	if out.Exchanger == nil {
		out.Exchanger = &authtypes.Exchanger{}
	}
	if out.Skew <= 0 {
		out.Skew = 60 * time.Second
	}
	if out.DefaultLifetime <= 0 {
		out.DefaultLifetime = time.Hour
	}
	if out.ForceRefreshInterval <= 0 {
		out.ForceRefreshInterval = 10 * time.Second
	}
	if out.FlightTimeout <= 0 {
		out.FlightTimeout = 30 * time.Second
	}
	if out.RefreshGrace <= 0 {
		out.RefreshGrace = 2 * time.Minute
	}
	return out
}

// margin is how long before expiry a token is refreshed: the smaller of
// the skew and half the token's lifetime (as issued).
func (o OAuthConfig) margin(issued, expiry time.Time) time.Duration {
	if issued.IsZero() || !expiry.After(issued) {
		return o.Skew
	}
	return min(o.Skew, expiry.Sub(issued)/2)
}

// expiry turns a token's lifetime into an expiry on the vault's clock.
// When the provider omitted expires_in: the access token's JWT exp if it is
// a JWT, else the credential's default lifetime, else the vault's.
func (v *Vault) expiry(c *authtypes.OAuth2Config, tok *authtypes.Token, now time.Time) time.Time {
	if tok.Lifetime > 0 {
		return now.Add(tok.Lifetime)
	}
	if exp, ok := authtypes.JWTExpiry(tok.AccessToken); ok && exp.After(now) {
		return exp
	}
	if c != nil && c.DefaultLifetime > 0 {
		return now.Add(c.DefaultLifetime)
	}
	return now.Add(v.oauth.DefaultLifetime)
}

// jitter is how much earlier than the margin this token is refreshed: a
// fraction of the credential's refresh_jitter that is stable for one token
// (so cache decisions agree) and differs between tokens.
func jitter(c *authtypes.OAuth2Config, accessToken string) time.Duration {
	if c == nil || c.RefreshJitter <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(accessToken))
	return time.Duration(h.Sum64() % uint64(c.RefreshJitter))
}

// usable reports whether the stored access token may be served at now.
func (v *Vault) usable(c *Credential, s *authtypes.OAuth2Secret, now time.Time) bool {
	if s == nil || s.AccessToken == "" {
		return false
	}
	if s.Expiry.IsZero() {
		return true
	}
	return now.Before(s.Expiry.Add(-v.oauth.margin(c.Secret.LastRefreshTime, s.Expiry) - jitter(c.OAuth2, s.AccessToken)))
}

// oauthAccessToken returns a secret whose access token the caller may use,
// refreshing when needed, and until when the caller may cache it.
func (v *Vault) oauthAccessToken(ctx context.Context, c *Credential, secret authtypes.Secret, force bool) (authtypes.Secret, time.Time, error) {
	now := v.clock.Now()
	o := secret.OAuth2
	forceAllowed := force && now.Sub(c.Secret.LastRefreshTime) >= v.oauth.ForceRefreshInterval
	if v.usable(c, o, now) && !forceAllowed {
		return secret, v.cacheUntil(c, o, now), nil
	}
	ch := v.refresh.DoChan(c.Name, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.oauth.FlightTimeout)
		defer cancel()
		return v.refreshFlight(fctx, c.Name, forceAllowed)
	})
	select {
	case <-ctx.Done():
		return secret, time.Time{}, fmt.Errorf("waiting for the token of %s: %w", c.Name, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return secret, time.Time{}, r.Err
		}
		fr := r.Val.(*flightResult)
		return fr.secret, fr.until, nil
	}
}

type flightResult struct {
	secret authtypes.Secret
	until  time.Time
}

// cacheUntil is how long a caller may cache parameters holding the access
// token: until the vault itself would refresh it.
func (v *Vault) cacheUntil(c *Credential, o *authtypes.OAuth2Secret, now time.Time) time.Time {
	if o.Expiry.IsZero() {
		return now.Add(v.staticTTL)
	}
	return o.Expiry.Add(-v.oauth.margin(c.Secret.LastRefreshTime, o.Expiry) - jitter(c.OAuth2, o.AccessToken))
}

// refreshFlight is the one token request in flight for a credential. It
// re-reads the record first: an earlier flight may have refreshed it.
func (v *Vault) refreshFlight(ctx context.Context, name string, force bool) (*flightResult, error) {
	c, err := v.store.GetCredential(ctx, name)
	if err != nil {
		return nil, err
	}
	secret, err := v.open(ctx, c)
	if err != nil {
		return nil, err
	}
	o := secret.OAuth2
	now := v.clock.Now()
	if v.usable(c, o, now) && !(force && now.Sub(c.Secret.LastRefreshTime) >= v.oauth.ForceRefreshInterval) {
		return &flightResult{secret: secret, until: v.cacheUntil(c, o, now)}, nil
	}
	if c.Secret.TokenStatus == TokenStatusAuthorizationRequired {
		// The grant is dead: asking again would only hammer the provider
		// (and overwrite the explanation). StartAuthorization or a new
		// secret resets the status.
		msg := c.Secret.LastError
		if msg == "" {
			msg = "no usable token"
		}
		return nil, fmt.Errorf("%s: %s: %w", name, msg, ErrAuthorizationRequired)
	}
	var tok *authtypes.Token
	gen := c.Secret.RefreshGeneration
	cutOff := c.Secret.RefreshPending // a refresh before this one never finished
	switch {
	case o.RefreshToken != "":
		// Crash-safe refresh: first make "a refresh is in flight" durable, so
		// that a vault that dies after the provider rotated the refresh token
		// but before the commit finds out on start-up.
		gen++
		if _, err := v.storeTokens(ctx, name, c.Secret.Version, nil, func(st *SecretState) {
			st.RefreshPending, st.RefreshGeneration = true, gen
		}, 0, "", "", nil); err != nil {
			return nil, err
		}
		start := v.clock.Now()
		tok, err = v.oauth.Exchanger.Refresh(ctx, c.OAuth2, o)
		v.observeToken("refresh_token", start, err)
		if authtypes.Classify(err) == authtypes.FailureReauthorize && o.PreviousRefreshToken != "" && now.Sub(o.RotatedAt) < v.oauth.RefreshGrace {
			// The current refresh token is refused; within the grace period
			// the one before it may still be accepted.
			prev := *o
			prev.RefreshToken = o.PreviousRefreshToken
			tok, err = v.oauth.Exchanger.Refresh(ctx, c.OAuth2, &prev)
		}
	case c.OAuth2.GrantType == authtypes.GrantClientCredentials:
		start := v.clock.Now()
		tok, err = v.oauth.Exchanger.ClientCredentials(ctx, c.OAuth2, o)
		v.observeToken("client_credentials", start, err)
	default:
		err = &authtypes.ProtocolError{Code: "no_refresh_token", Description: "no refresh token is stored; authorize again", HTTPStatus: 400}
	}
	if err == nil && v.oauth.AfterTokenResponse != nil {
		if herr := v.oauth.AfterTokenResponse(name); herr != nil {
			return nil, fmt.Errorf("%s: refresh abandoned: %w", name, herr)
		}
	}
	if err != nil {
		if cutOff && authtypes.Classify(err) == authtypes.FailureReauthorize {
			err = &cutOffRefresh{err}
		}
		return v.refreshFailed(ctx, c, secret, err)
	}
	next := *o
	next.AccessToken, next.Expiry = tok.AccessToken, v.expiry(c.OAuth2, tok, now)
	if tok.RefreshToken != "" && tok.RefreshToken != o.RefreshToken {
		// Rotated: the old one is (about to be) dead; keep it in the grace
		// slot. A response without refresh_token keeps the stored one.
		next.PreviousRefreshToken, next.RotatedAt = o.RefreshToken, now
		next.RefreshToken = tok.RefreshToken
	}
	secret.OAuth2 = &next
	stored, err := v.storeTokens(ctx, name, c.Secret.Version, &secret, func(st *SecretState) {
		st.TokenStatus, st.LastError, st.RefreshPending = TokenStatusActive, "", false
		st.LastRefreshTime, st.AccessTokenExpiry = now, next.Expiry
		st.HasRefreshToken = next.RefreshToken != ""
	}, gen, "oauth/refresh", auditlog.OutcomeSuccess, nil)
	if err != nil {
		return nil, err
	}
	return &flightResult{secret: secret, until: v.cacheUntil(stored, &next, now)}, nil
}

// refreshFailed records a failed token request and decides what the
// caller gets: a permanent refusal makes the credential
// AUTHORIZATION_REQUIRED; a transient failure still serves an access
// token that has not expired yet.
func (v *Vault) refreshFailed(ctx context.Context, c *Credential, secret authtypes.Secret, cause error) (*flightResult, error) {
	now := v.clock.Now()
	failure := authtypes.Classify(cause)
	status, sentinel := TokenStatusRefreshFailed, ErrRefreshFailed
	switch failure {
	case authtypes.FailureReauthorize:
		status, sentinel = TokenStatusAuthorizationRequired, ErrAuthorizationRequired
	case authtypes.FailureClient:
		sentinel = ErrClientRejected
	case authtypes.FailureMalformed:
		sentinel = ErrTokenResponseMalformed
	}
	lastErr := "token endpoint unavailable"
	var pe *authtypes.ProtocolError
	var co *cutOffRefresh
	switch {
	case errors.As(cause, &co) && errors.As(cause, &pe):
		lastErr = "the vault stopped during a refresh and the provider no longer accepts the stored refresh token " +
			"(it was rotated and the new one was never received): authorize again (" + pe.Error() + ")"
	case errors.As(cause, &pe):
		lastErr = pe.Error()
	case failure == authtypes.FailureMalformed:
		lastErr = "the token endpoint's answer is not a token response"
	}
	v.log.WarnContext(ctx, "oauth token request failed", "credential", c.Name, "error", lastErr, "failure", int(failure))
	if _, err := v.storeTokens(ctx, c.Name, c.Secret.Version, nil, func(st *SecretState) {
		st.TokenStatus, st.LastError, st.RefreshPending = status, lastErr, false
	}, 0, "oauth/refresh", auditlog.OutcomeFailure, map[string]string{"error": lastErr}); err != nil {
		v.log.ErrorContext(ctx, "recording a failed refresh", "credential", c.Name, "error", err.Error())
	}
	o := secret.OAuth2
	if failure != authtypes.FailureReauthorize && o.AccessToken != "" && (o.Expiry.IsZero() || now.Before(o.Expiry)) {
		// The provider is down or refuses the client, but the access token
		// still works: serve it until it expires, and try again later.
		return &flightResult{secret: secret, until: minTime(o.Expiry, now.Add(v.oauth.ForceRefreshInterval))}, nil
	}
	return nil, fmt.Errorf("%s: %s: %w", c.Name, lastErr, sentinel)
}

func minTime(a, b time.Time) time.Time {
	if !a.IsZero() && a.Before(b) {
		return a
	}
	return b
}

// storeTokens re-seals secret (same secret version, fresh data key) onto
// the current record, applies status, and commits both with an audit event
// in one transaction, before anyone is given the new token. A nil secret
// changes the status only. If an admin rotated the secret meanwhile, the
// tokens belong to a secret that no longer exists and are dropped.
//
// gen, when not zero, is the refresh generation the result belongs to: if
// the stored generation moved on, another refresh owns the credential now
// and this result is dropped (compare-and-swap). An empty method writes no
// audit event (the refresh-pending marker).
func (v *Vault) storeTokens(ctx context.Context, name string, version int64, secret *authtypes.Secret, status func(*SecretState),
	gen int64, method string, outcome auditlog.Outcome, details map[string]string) (*Credential, error) {
	for attempt := 0; ; attempt++ {
		cur, err := v.store.GetCredential(ctx, name)
		if err != nil {
			return nil, err
		}
		if cur.Secret.Version != version {
			return nil, fmt.Errorf("%s: the secret was rotated during a token request: %w", name, ErrRefreshFailed)
		}
		if gen != 0 && cur.Secret.RefreshGeneration != gen {
			return nil, fmt.Errorf("%s: another refresh superseded this one: %w", name, ErrRefreshFailed)
		}
		next := cur.clone()
		if secret != nil {
			sealed, _, err := v.seal(ctx, name, version, *secret)
			if err != nil {
				return nil, err
			}
			next.Secret.Sealed = sealed
		}
		status(&next.Secret)
		next.Revision = cur.Revision + 1
		var ev *auditlog.Event
		if method != "" {
			d := map[string]string{"secret_version": strconv.FormatInt(version, 10)}
			for k, val := range details {
				d[k] = val
			}
			ev = &auditlog.Event{Time: v.clock.Now(), Caller: "credvaultd", Method: method, Resource: name, Outcome: outcome, Details: d}
			if a := CallAuditFrom(ctx); a != nil {
				ev.RequestID = a.RequestID
			}
		}
		err = v.store.PutCredential(ctx, next, Condition{Revision: cur.Revision}, ev)
		if errors.Is(err, ErrEtagMismatch) && attempt < maxWriteAttempts {
			continue // a metadata update raced us: apply the tokens to it
		}
		if err != nil {
			return nil, err
		}
		if v.audit.sink != nil && ev != nil {
			v.audit.sink(ev)
		}
		if secret != nil {
			v.forgetKey(cur)
		}
		return next, nil
	}
}

// redeemSignInToken exchanges a one-time sign-in token (RFC 8693) for
// tokens at write time, so a bad or expired one fails the write, and drops
// it: it never reaches storage.
func (v *Vault) redeemSignInToken(ctx context.Context, c *Credential, secret *authtypes.Secret) error {
	o := secret.OAuth2
	if c.Type != authtypes.TypeOAuth2 || o == nil || o.SignInToken == "" {
		return nil
	}
	tok, err := v.oauth.Exchanger.TokenExchange(ctx, c.OAuth2, o, o.SignInToken)
	o.SignInToken = ""
	var pe *authtypes.ProtocolError
	if errors.As(err, &pe) {
		return &authtypes.ValidationError{Violations: []authtypes.FieldViolation{{
			Field: "secret.oauth2.sign_in_token", Description: "the provider refused the sign-in token (" + pe.Error() + ")"}}}
	}
	if err != nil {
		return fmt.Errorf("%s: exchanging the sign-in token: %w", c.Name, ErrRefreshFailed)
	}
	o.AccessToken, o.Expiry = tok.AccessToken, v.expiry(c.OAuth2, tok, v.clock.Now())
	if tok.RefreshToken != "" {
		o.RefreshToken = tok.RefreshToken
	}
	return nil
}

// RecoverPendingRefreshes finds OAuth 2.0 credentials whose last refresh
// was cut off (the vault stopped between asking the provider and
// committing the answer) and retries each once. If the provider consumed
// the stored refresh token, the retry gets invalid_grant and the credential
// becomes AUTHORIZATION_REQUIRED with a last_error that says so. It returns
// how many it retried.
func (v *Vault) RecoverPendingRefreshes(ctx context.Context) (int, error) {
	pending, err := v.store.PendingRefreshes(ctx)
	if err != nil {
		return 0, err
	}
	for _, name := range pending {
		_, err := v.refreshFlight(ctx, name, true)
		v.log.InfoContext(ctx, "retried a refresh cut off by a stop", "credential", name, "ok", err == nil)
	}
	return len(pending), nil
}

// cutOffRefresh marks a refusal of the refresh token that follows a
// refresh the vault never finished: the provider most likely rotated the
// token and the new one was lost with the process.
type cutOffRefresh struct{ err error }

func (e *cutOffRefresh) Error() string { return e.err.Error() }
func (e *cutOffRefresh) Unwrap() error { return e.err }
