// Package vault is the domain of credvault: credentials stored with their
// secret sealed under a fresh data key, callers, and the resolution of a
// credential into the parameters of an outbound request.
//
// The package knows nothing of gRPC. It defines the small interfaces it needs
// (Store, KeyProvider, Clock); adapters in sub-packages implement them and
// only cmd/ wires them in.
package vault

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/credvault/credvault/authtypes"
	"github.com/credvault/credvault/vault/auditlog"
	"github.com/credvault/credvault/vault/envelope"
)

// Config wires a Vault.
type Config struct {
	Store Store
	Keys  KeyProvider
	// Clock defaults to SystemClock.
	Clock Clock
	// Logger defaults to slog.Default(). The vault never logs secret values.
	Logger *slog.Logger
	// DataKeyCacheSize bounds the unwrapped data keys kept in memory
	// (default 65536; negative disables the cache).
	DataKeyCacheSize int
	// DataKeyCacheMaxAge bounds how long an unwrapped data key is kept
	// (default 1h): a key disabled at the provider stops working within it.
	DataKeyCacheMaxAge time.Duration
	// AuditSink, when set, receives every audit event once it is durable in
	// the store (for shipping to a SIEM). The store's chain stays the record
	// of truth; the sink must not block for long.
	AuditSink func(*auditlog.Event)
	// AuditCommitInterval is the least time between the starts of two
	// group commits of audit events (zero: none, DefaultAuditCommitInterval).
	// It bounds the disk syncs per second under load, at the cost of
	// latency; an event after a quiet spell still commits at once.
	AuditCommitInterval time.Duration
	// TokenObserver, when set, is told about every token-endpoint exchange.
	TokenObserver TokenObserver
	// OAuth tunes the OAuth 2.0 lifecycle.
	OAuth *OAuthConfig
	// StaticCacheTTL is how long a caller may cache the parameters of a
	// credential whose secret does not expire (default 60s): the delay until
	// a rotation reaches every caller.
	StaticCacheTTL time.Duration
}

// DefaultAuditCommitInterval is none: a batch forms while the previous
// commit runs, and commits as soon as it ends. Measured on a 2-core VM with
// a virtio disk, a 1 ms interval doubled the events per sync at 64
// concurrent callers yet saved no CPU per resolve (the waiting costs what
// the syncs saved), and at 16 callers it more than halved throughput;
// resolves sit on callers' request paths, so latency wins. An interval
// bounds the disk syncs per second where the disk, not the CPU, is short.
const DefaultAuditCommitInterval = 0

// Vault is the credential vault. Its methods are safe for concurrent use.
type Vault struct {
	store  Store
	keys   KeyProvider
	clock  Clock
	log    *slog.Logger
	dek    *keyCache
	unwrap singleflight.Group // one key-provider call per wrapped key at a time
	audit  *groupCommitter

	oauth    OAuthConfig
	refresh  singleflight.Group // one token request per credential at a time
	fpKey    []byte             // HMAC key of secret fingerprints; never leaves the process
	stateKey []byte             // HMAC key of OAuth state tokens; never leaves the process

	staticTTL time.Duration

	counters      counters
	tokenObserver TokenObserver

	readyMu  sync.Mutex // guards readyAt and readyErr
	readyAt  time.Time
	readyErr error
}

// Meta keys.
const (
	metaKeyProvider    = "key_provider"
	metaFingerprintKey = "fingerprint_key"
)

// New opens the vault on a store and key provider. It refuses a database
// created with another key provider, and loads (or on first start creates)
// the fingerprint key, wrapped by the key provider.
func New(ctx context.Context, cfg Config) (*Vault, error) {
	if cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("vault: Store and Keys are required")
	}
	v := &Vault{
		store:     cfg.Store,
		keys:      cfg.Keys,
		clock:     cfg.Clock,
		log:       cfg.Logger,
		staticTTL: cfg.StaticCacheTTL,
		oauth:     cfg.OAuth.withDefaults(),

		tokenObserver: cfg.TokenObserver,
	}
	if v.clock == nil {
		v.clock = SystemClock{}
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	if v.staticTTL <= 0 {
		v.staticTTL = 60 * time.Second
	}
	size, age := cfg.DataKeyCacheSize, cfg.DataKeyCacheMaxAge
	if size == 0 {
		size = 65536
	}
	if age <= 0 {
		age = time.Hour
	}
	v.dek = newKeyCache(size, age)
	v.audit = &groupCommitter{store: v.store, sink: cfg.AuditSink, counters: &v.counters, minInterval: cfg.AuditCommitInterval}

	id, err := v.store.InitMeta(ctx, metaKeyProvider, []byte(cfg.Keys.ID()))
	if err != nil {
		return nil, fmt.Errorf("vault: reading key provider id: %w", err)
	}
	if string(id) != cfg.Keys.ID() {
		return nil, fmt.Errorf("vault: the database was created with key provider %q, not %q", id, cfg.Keys.ID())
	}
	if err := v.loadFingerprintKey(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// KeyProviderID returns the id of the key provider in use.
func (v *Vault) KeyProviderID() string { return v.keys.ID() }

func (v *Vault) loadFingerprintKey(ctx context.Context) error {
	encCtx := map[string]string{"purpose": "fingerprint"}
	wrapped, err := v.store.Meta(ctx, metaFingerprintKey)
	if err != nil {
		return fmt.Errorf("vault: reading fingerprint key: %w", err)
	}
	if wrapped == nil {
		dk, err := v.keys.GenerateDataKey(ctx, encCtx)
		if err != nil {
			return fmt.Errorf("vault: creating fingerprint key: %w", err)
		}
		if wrapped, err = v.store.InitMeta(ctx, metaFingerprintKey, dk.Wrapped); err != nil {
			return fmt.Errorf("vault: storing fingerprint key: %w", err)
		}
	}
	key, err := v.keys.UnwrapKey(ctx, wrapped, encCtx)
	if err != nil {
		return fmt.Errorf("vault: unwrapping fingerprint key: %w", err)
	}
	v.fpKey = key
	// The state key is derived from the same vault-internal key, for a
	// different purpose, so it needs no storage of its own.
	m := hmac.New(sha256.New, key)
	m.Write([]byte("credvault oauth state key v1"))
	v.stateKey = m.Sum(nil)
	return nil
}

// fingerprint is the first 16 hex characters of HMAC-SHA256 of the encoded
// secret under the vault's fingerprint key: equal secrets of one vault have
// equal fingerprints, and nobody without the key can test a guess.
func (v *Vault) fingerprint(encoded []byte) string {
	m := hmac.New(sha256.New, v.fpKey)
	m.Write(encoded)
	return hex.EncodeToString(m.Sum(nil))[:16]
}

// encCtx is the key provider's encryption context of a credential's data
// key: KMS's own audit trail shows which credential was unwrapped.
func encCtx(name string, version int64) map[string]string {
	return map[string]string{"credential": name, "version": strconv.FormatInt(version, 10)}
}

// seal encrypts secret for the record name at secret version version under a
// fresh data key. It calls the key provider, so it must run outside any
// store write.
func (v *Vault) seal(ctx context.Context, name string, version int64, secret authtypes.Secret) (sealed []byte, fingerprint string, err error) {
	plain, err := secret.MarshalBinary()
	if err != nil {
		return nil, "", fmt.Errorf("encoding secret: %w", err)
	}
	defer clear(plain)
	dk, err := v.keys.GenerateDataKey(ctx, encCtx(name, version))
	if err != nil {
		return nil, "", fmt.Errorf("generating data key for %s: %w", name, err)
	}
	defer clear(dk.Plaintext)
	key, err := envelope.NewKey(dk.Plaintext)
	if err == nil {
		sealed, err = key.Seal(dk.Wrapped, plain, envelope.AAD(name, version))
	}
	if err != nil {
		return nil, "", fmt.Errorf("sealing secret of %s: %w", name, err)
	}
	// The first resolve after a write needs no key-provider call.
	v.dek.put(dk.Wrapped, key, v.clock.Now())
	return sealed, v.fingerprint(plain), nil
}

// open decrypts the secret of c. Data keys come from the cache when they
// can; concurrent misses of one key share one key-provider call.
func (v *Vault) open(ctx context.Context, c *Credential) (authtypes.Secret, error) {
	return v.openBlob(ctx, c.Name, c.Secret.Version, c.Secret.Sealed)
}

// openBlob decrypts a sealed secret of the record name at version.
func (v *Vault) openBlob(ctx context.Context, name string, version int64, sealed []byte) (authtypes.Secret, error) {
	var secret authtypes.Secret
	env, err := envelope.Parse(sealed)
	if err != nil {
		return secret, fmt.Errorf("%s: %w: %v", name, ErrCorrupt, err)
	}
	key, err := v.dataKey(ctx, name, version, env.WrappedKey)
	if err != nil {
		return secret, err
	}
	plain, err := key.Open(env, envelope.AAD(name, version))
	if err != nil {
		return secret, fmt.Errorf("%s: %w: %v", name, ErrCorrupt, err)
	}
	defer clear(plain)
	if err := secret.UnmarshalBinary(plain); err != nil {
		return secret, fmt.Errorf("%s: %w: decoding secret", name, ErrCorrupt)
	}
	return secret, nil
}

// dataKey returns the unwrapped data key of a wrapped one, ready to open.
func (v *Vault) dataKey(ctx context.Context, name string, version int64, wrapped []byte) (*envelope.Key, error) {
	if key, ok := v.dek.get(wrapped, v.clock.Now()); ok {
		v.counters.dekHits.Add(1)
		return key, nil
	}
	v.counters.dekMisses.Add(1)
	ch := v.unwrap.DoChan(string(wrapped), func() (any, error) {
		// The flight outlives any one caller's cancellation; it has its own
		// bound through the provider's timeouts.
		plain, err := v.keys.UnwrapKey(context.WithoutCancel(ctx), wrapped, encCtx(name, version))
		if err != nil {
			return nil, err
		}
		defer clear(plain)
		key, err := envelope.NewKey(plain)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKeyRejected, err)
		}
		v.dek.put(wrapped, key, v.clock.Now())
		return key, nil
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("unwrapping data key of %s: %w", name, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, fmt.Errorf("unwrapping data key of %s: %w", name, r.Err)
		}
		return r.Val.(*envelope.Key), nil
	}
}

// validate checks a whole credential definition and, when secret is given,
// the secret and the expansion of the placement with it, so that a bad
// header value is refused at write time rather than at every resolve.
func validate(c *Credential, secret *authtypes.Secret) error {
	def := c.Definition()
	vs := authtypes.ValidateDefinition("credential", def)
	vs = append(vs, validateMetadata("credential", c)...)
	if secret != nil {
		vs = append(vs, authtypes.ValidateSecret("secret", c.Type, *secret)...)
		if len(vs) == 0 && c.Type == authtypes.TypeOAuth2 {
			vs = append(vs, authtypes.ValidateOAuth2Secret("secret.oauth2", c.OAuth2, secret.OAuth2)...)
		}
	}
	if len(vs) > 0 {
		return &authtypes.ValidationError{Violations: vs}
	}
	if secret != nil {
		if _, err := authtypes.Expand("credential", def, *secret); err != nil {
			return err
		}
	}
	return nil
}

// CreateCredential stores a new credential with its secret. c carries the
// non-secret definition; its Name must be credentials/{id}.
func (v *Vault) CreateCredential(ctx context.Context, c *Credential, secret authtypes.Secret) (*Credential, error) {
	c = c.clone()
	if _, ok := ParseCredentialName(c.Name); !ok {
		return nil, &authtypes.ValidationError{Violations: []authtypes.FieldViolation{{
			Field: "credential_id", Description: "must match " + idPattern.String()}}}
	}
	if err := validate(c, &secret); err != nil {
		return nil, err
	}
	// Fail before any provider call when the id is taken; the store checks
	// again inside its transaction.
	if _, err := v.store.GetCredential(ctx, c.Name); err == nil {
		return nil, fmt.Errorf("%s: %w", c.Name, ErrAlreadyExists)
	}
	if err := v.redeemSignInToken(ctx, c, &secret); err != nil {
		return nil, err
	}
	now := v.clock.Now().UTC()
	c.CreateTime, c.UpdateTime, c.Revision = now, now, 1
	c.Secret = SecretState{Version: 1, SetTime: now}
	v.describeSecret(&c.Secret, c, secret, now)
	sealed, fp, err := v.seal(ctx, c.Name, 1, secret)
	if err != nil {
		return nil, err
	}
	c.Secret.Sealed, c.Secret.Fingerprint = sealed, fp
	ev := v.successEvent(ctx, c.Name, map[string]string{"secret_version": "1", "fingerprint": fp})
	if err := v.store.PutCredential(ctx, c, Condition{MustNotExist: true}, ev); err != nil {
		return nil, err
	}
	v.recorded(ctx, ev)
	return c.clone(), nil
}

// describeSecret fills the non-secret facts about a freshly written secret.
func (v *Vault) describeSecret(st *SecretState, c *Credential, secret authtypes.Secret, now time.Time) {
	if c.Type != authtypes.TypeOAuth2 || secret.OAuth2 == nil {
		return
	}
	o := secret.OAuth2
	st.HasClientSecret = o.ClientSecret != ""
	st.HasRefreshToken = o.RefreshToken != ""
	st.AccessTokenExpiry = o.Expiry
	switch {
	case o.AccessToken != "" || o.RefreshToken != "":
		st.TokenStatus = TokenStatusActive
	case c.OAuth2 != nil && c.OAuth2.GrantType == authtypes.GrantClientCredentials:
		st.TokenStatus = TokenStatusActive // the vault gets tokens itself
	default:
		st.TokenStatus = TokenStatusAuthorizationRequired
	}
}

// GetCredential returns the credential named name.
func (v *Vault) GetCredential(ctx context.Context, name string) (*Credential, error) {
	return v.store.GetCredential(ctx, name)
}

// ListCredentials returns up to limit credentials after the name after that
// match (nil matches all), and the name to continue after ("" at the end).
// It scans at most maxScan records per call, so a selective filter over a
// large vault returns short pages instead of taking unbounded time.
func (v *Vault) ListCredentials(ctx context.Context, after string, limit int, match func(*Credential) bool) ([]*Credential, string, error) {
	const maxScan = 10000
	var out []*Credential
	for scanned := 0; scanned < maxScan; {
		batch, err := v.store.ListCredentials(ctx, after, min(limit+1, maxScan-scanned))
		if err != nil {
			return nil, "", err
		}
		if len(batch) == 0 {
			return out, "", nil
		}
		for _, c := range batch {
			scanned++
			if match == nil || match(c) {
				if len(out) == limit {
					return out, after, nil // c is on the next page
				}
				out = append(out, c)
			}
			after = c.Name
		}
	}
	return out, after, nil // scan budget spent: the caller continues later
}

// maxWriteAttempts bounds the optimistic-concurrency retries of a write
// without an etag.
const maxWriteAttempts = 8

// writeCredential is the read-modify-write of one stored credential: it
// reads the record, checks etag (when not empty), lets change build the
// next record and its audit event from a copy, and commits them on
// condition that the revision did not move. Without an etag, a concurrent
// write makes it start over on the newer record (no update is lost); with
// one, the caller gets ErrEtagMismatch. It returns the record it replaced
// and the stored one.
func (v *Vault) writeCredential(ctx context.Context, name, etag string, change func(cur, next *Credential) (*auditlog.Event, error)) (*Credential, *Credential, error) {
	for attempt := 0; ; attempt++ {
		cur, err := v.store.GetCredential(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		if etag != "" && etag != cur.Etag() {
			return nil, nil, fmt.Errorf("%s: %w", name, ErrEtagMismatch)
		}
		next := cur.clone()
		ev, err := change(cur, next)
		if err != nil {
			return nil, nil, err
		}
		next.Revision = cur.Revision + 1
		err = v.store.PutCredential(ctx, next, Condition{Revision: cur.Revision}, ev)
		if errors.Is(err, ErrEtagMismatch) && etag == "" && attempt < maxWriteAttempts {
			continue // someone else wrote in between: apply the change to theirs
		}
		if err != nil {
			return nil, nil, err
		}
		v.recorded(ctx, ev)
		return cur, next.clone(), nil
	}
}

// UpdateCredential changes the non-secret fields of a credential: mutate is
// applied to a copy of the stored record, and the name, type, times and
// secret are restored afterwards, so it cannot touch them. etag, when not
// empty, must be the stored record's etag (ErrEtagMismatch otherwise).
func (v *Vault) UpdateCredential(ctx context.Context, name, etag string, mutate func(*Credential)) (*Credential, error) {
	_, stored, err := v.writeCredential(ctx, name, etag, func(cur, next *Credential) (*auditlog.Event, error) {
		mutate(next)
		next.Name, next.Type, next.CreateTime, next.Secret = cur.Name, cur.Type, cur.CreateTime, cur.Secret
		if err := validate(next, nil); err != nil {
			return nil, err
		}
		if !slices.Equal(next.Placement, cur.Placement) || next.OAuth2 != nil {
			// A new placement must expand cleanly with the stored secret.
			secret, err := v.open(ctx, cur)
			if err != nil {
				return nil, err
			}
			if _, err := authtypes.Expand("credential", next.Definition(), secret); err != nil {
				return nil, err
			}
		}
		next.UpdateTime = v.clock.Now().UTC()
		return v.successEvent(ctx, name, nil), nil
	})
	return stored, err
}

// RotateCredentialSecret replaces the secret of a credential and increments
// its secret version.
func (v *Vault) RotateCredentialSecret(ctx context.Context, name, etag string, secret authtypes.Secret) (*Credential, error) {
	replaced, stored, err := v.writeCredential(ctx, name, etag, func(cur, next *Credential) (*auditlog.Event, error) {
		if err := validate(next, &secret); err != nil {
			return nil, err
		}
		if err := v.redeemSignInToken(ctx, next, &secret); err != nil {
			return nil, err
		}
		now := v.clock.Now().UTC()
		next.UpdateTime = now
		next.Secret = SecretState{Version: cur.Secret.Version + 1, SetTime: now}
		v.describeSecret(&next.Secret, next, secret, now)
		var err error
		if next.Secret.Sealed, next.Secret.Fingerprint, err = v.seal(ctx, name, next.Secret.Version, secret); err != nil {
			return nil, err
		}
		return v.successEvent(ctx, name, map[string]string{
			"secret_version": strconv.FormatInt(next.Secret.Version, 10), "fingerprint": next.Secret.Fingerprint}), nil
	})
	if err != nil {
		return nil, err
	}
	v.forgetKey(replaced)
	return stored, nil
}

// DeleteCredential removes a credential. etag, when not empty, must match.
// For OAuth 2.0 with a revocation URL, the refresh token (or else the
// access token) is revoked at the provider first (RFC 7009); a failed
// revocation is recorded in the audit event and does not keep the
// credential alive (the admin asked for it to be gone).
func (v *Vault) DeleteCredential(ctx context.Context, name, etag string) error {
	cur, err := v.store.GetCredential(ctx, name)
	if err != nil {
		return err
	}
	if etag != "" && etag != cur.Etag() {
		return fmt.Errorf("%s: %w", name, ErrEtagMismatch)
	}
	cond := Condition{}
	if etag != "" {
		cond.Revision = cur.Revision
	}
	details := v.revokeAtProvider(ctx, cur)
	ev := v.successEvent(ctx, name, details)
	if err := v.store.DeleteCredential(ctx, name, cond, ev); err != nil {
		return err
	}
	v.recorded(ctx, ev)
	v.forgetKey(cur)
	return nil
}

// revokeAtProvider revokes an OAuth 2.0 credential's tokens when it has a
// revocation URL, and says what happened for the audit event.
func (v *Vault) revokeAtProvider(ctx context.Context, c *Credential) map[string]string {
	if c.Type != authtypes.TypeOAuth2 || c.OAuth2 == nil || c.OAuth2.RevocationURL == "" {
		return nil
	}
	secret, err := v.open(ctx, c)
	if err != nil || secret.OAuth2 == nil {
		return map[string]string{"revocation": "skipped: secret unreadable"}
	}
	o := secret.OAuth2
	token, hint := o.RefreshToken, "refresh_token"
	if token == "" {
		token, hint = o.AccessToken, "access_token"
	}
	if token == "" {
		return map[string]string{"revocation": "skipped: no token"}
	}
	if err := v.oauth.Exchanger.Revoke(ctx, c.OAuth2, o, token, hint); err != nil {
		var pe *authtypes.ProtocolError
		msg := "failed: token endpoint unavailable"
		if errors.As(err, &pe) {
			msg = "failed: " + pe.Error()
		}
		v.log.WarnContext(ctx, "revoking tokens of a deleted credential", "credential", c.Name, "result", msg)
		return map[string]string{"revocation": msg}
	}
	return map[string]string{"revocation": "revoked " + hint}
}

// forgetKey drops the cached data key of a record that is gone or replaced.
func (v *Vault) forgetKey(c *Credential) {
	if env, err := envelope.Parse(c.Secret.Sealed); err == nil {
		v.dek.forget(env.WrappedKey)
	}
}

// ResolveRequest asks for the parameters of a credential.
type ResolveRequest struct {
	Name string
	// TargetURL is where the caller will send the parameters; required
	// when the credential has allowed hosts.
	TargetURL string
	// Caller is the authenticated principal.
	Caller *Caller
	// ForceRefresh asks for a new OAuth 2.0 access token (the target said
	// 401); honoured at most once per OAuthConfig.ForceRefreshInterval.
	ForceRefresh bool
}

// Resolution is a resolved credential.
type Resolution struct {
	Parameters []authtypes.Parameter
	// ExpireTime is how long the caller may cache Parameters.
	ExpireTime time.Time
	// Version is the secret version resolved.
	Version int64
	// Type is the credential's type.
	Type authtypes.Type
}

// Resolve turns a credential into the parameters of an outbound request. An
// unknown credential and one the caller may not use give the same error
// (ErrPermissionDenied), so a resolver cannot probe for names.
func (v *Vault) Resolve(ctx context.Context, req ResolveRequest) (*Resolution, error) {
	c, err := v.store.GetCredential(ctx, req.Name)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("resolving %s: %w", req.Name, ErrPermissionDenied)
	}
	if err != nil {
		return nil, err
	}
	if !v.mayResolve(req.Caller, c) {
		return nil, fmt.Errorf("resolving %s: %w", req.Name, ErrPermissionDenied)
	}
	if len(c.AllowedHosts) > 0 {
		u, err := url.Parse(req.TargetURL)
		if req.TargetURL == "" || err != nil || u.Host == "" || !hostAllowed(u.Hostname(), c.AllowedHosts) {
			return nil, fmt.Errorf("resolving %s: %w", req.Name, ErrHostNotAllowed)
		}
	}
	secret, err := v.open(ctx, c)
	if err != nil {
		return nil, err
	}
	now := v.clock.Now()
	expire := now.Add(v.staticTTL)
	if c.Type == authtypes.TypeOAuth2 {
		if secret, expire, err = v.oauthAccessToken(ctx, c, secret, req.ForceRefresh); err != nil {
			return nil, err
		}
	}
	params, err := authtypes.Expand("credential", c.Definition(), secret)
	if err != nil {
		// Validated at write time; reaching here means the record changed
		// under us or the rules did. Say so without the value.
		return nil, fmt.Errorf("resolving %s: %w", req.Name, err)
	}
	return &Resolution{Parameters: params, ExpireTime: expire, Version: c.Secret.Version, Type: c.Type}, nil
}

// mayResolve reports whether caller may resolve c: it must hold the
// resolver role and be named in allowed_callers. Admins are not exempt.
func (v *Vault) mayResolve(caller *Caller, c *Credential) bool {
	return caller != nil && caller.HasRole(RoleResolver) && slices.Contains(c.AllowedCallers, caller.Name)
}

// BulkCreate creates many credentials in one store transaction, for
// offline loading (benchmarks, imports into a stopped vault). Each secret
// still gets its own data key. The store must implement BulkStore.
func (v *Vault) BulkCreate(ctx context.Context, cs []*Credential, secrets []authtypes.Secret) error {
	bs, ok := v.store.(BulkStore)
	if !ok {
		return errors.New("vault: the store cannot write in bulk")
	}
	now := v.clock.Now().UTC()
	out := make([]*Credential, len(cs))
	for i, c := range cs {
		c = c.clone()
		if _, ok := ParseCredentialName(c.Name); !ok {
			return &authtypes.ValidationError{Violations: []authtypes.FieldViolation{{Field: fmt.Sprintf("credentials[%d].name", i), Description: "must be credentials/{id}"}}}
		}
		if err := validate(c, &secrets[i]); err != nil {
			return err
		}
		c.CreateTime, c.UpdateTime, c.Revision = now, now, 1
		c.Secret = SecretState{Version: 1, SetTime: now}
		v.describeSecret(&c.Secret, c, secrets[i], now)
		var err error
		if c.Secret.Sealed, c.Secret.Fingerprint, err = v.seal(ctx, c.Name, 1, secrets[i]); err != nil {
			return err
		}
		out[i] = c
	}
	ev := &auditlog.Event{Time: now, Caller: "credvaultd", Method: "bulk/create", Outcome: auditlog.OutcomeSuccess,
		Details: map[string]string{"count": strconv.Itoa(len(cs))}}
	return bs.PutCredentialsBulk(ctx, out, ev)
}

// Ready reports whether the vault can serve: the database answers and the
// key provider unwraps a key (checked at most every 30 s, so probes do not
// turn into a stream of KMS calls).
func (v *Vault) Ready(ctx context.Context) error {
	wrapped, err := v.store.Meta(ctx, metaFingerprintKey)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	v.readyMu.Lock()
	defer v.readyMu.Unlock()
	if v.clock.Now().Sub(v.readyAt) < 30*time.Second {
		return v.readyErr
	}
	_, v.readyErr = v.keys.UnwrapKey(ctx, wrapped, map[string]string{"purpose": "fingerprint"})
	v.readyAt = v.clock.Now()
	return v.readyErr
}

// Backup streams a consistent snapshot of the database to w and records
// the backup in the audit log. The snapshot holds secrets sealed only: it
// is as safe as the database file, and reading it needs the same key
// provider (the local key file, or the KMS key).
func (v *Vault) Backup(ctx context.Context, w io.Writer) (int64, error) {
	bs, ok := v.store.(BackupStore)
	if !ok {
		return 0, errors.New("vault: the store cannot back up")
	}
	return bs.Backup(ctx, w)
}
