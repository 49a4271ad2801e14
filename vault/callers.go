package vault

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/credvault/credvault/authtypes"
	"github.com/credvault/credvault/vault/auditlog"
)

// TokenPrefix starts every caller token, so that a leaked token is
// recognisable by secret scanners.
const TokenPrefix = "cvt_"

// AdminCallerID is the id of the admin caller created on first start.
const AdminCallerID = "admin"

// ErrUnauthenticated means the presented token belongs to no caller.
var ErrUnauthenticated = errors.New("unauthenticated")

// NewToken returns a fresh caller token: the prefix and 256 random bits.
func NewToken() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// hashToken is the stored form of a token. Tokens carry 256 random bits, so
// a fast hash is enough: there is nothing to guess.
func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Authenticate returns the caller whose token this is.
func (v *Vault) Authenticate(ctx context.Context, token string) (*Caller, error) {
	if !strings.HasPrefix(token, TokenPrefix) {
		return nil, ErrUnauthenticated
	}
	hash := hashToken(token)
	c, err := v.store.CallerByTokenHash(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("authenticating: %w", err)
	}
	// The index lookup already matched; compare again in constant time so
	// that correctness never rests on the index alone.
	if subtle.ConstantTimeCompare(c.TokenHash, hash) != 1 {
		return nil, ErrUnauthenticated
	}
	return c, nil
}

// AuthenticateMTLS returns the caller whose mTLS identity is one of ids
// (the URI and DNS SANs of a client certificate that TLS already verified
// against the configured client CA).
func (v *Vault) AuthenticateMTLS(ctx context.Context, ids []string) (*Caller, error) {
	for _, id := range ids {
		c, err := v.store.CallerByMTLSIdentity(ctx, id)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("authenticating: %w", err)
		}
	}
	return nil, ErrUnauthenticated
}

// BootstrapAdmin makes sure the admin caller exists. On first start it is
// created with token; afterwards it is left as it is (its token may have
// been rotated since). It reports whether it created the caller.
func (v *Vault) BootstrapAdmin(ctx context.Context, token string) (bool, error) {
	name := CallerName(AdminCallerID)
	if _, err := v.store.GetCaller(ctx, name); err == nil {
		return false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	now := v.clock.Now().UTC()
	c := &Caller{Name: name, DisplayName: "Administrator (created on first start)", Roles: []Role{RoleAdmin},
		CreateTime: now, TokenHash: hashToken(token), TokenCreateTime: now, Revision: 1}
	ev := &auditlog.Event{Time: now, Caller: "credvaultd", Method: "bootstrap/admin", Resource: name, Outcome: auditlog.OutcomeSuccess}
	err := v.store.PutCaller(ctx, c, Condition{MustNotExist: true}, ev)
	if errors.Is(err, ErrAlreadyExists) {
		return false, nil
	}
	return err == nil, err
}

// CreateCaller creates a caller and returns it with its token, which is not
// stored and cannot be read again.
func (v *Vault) CreateCaller(ctx context.Context, c *Caller) (*Caller, string, error) {
	if err := validateCaller(c); err != nil {
		return nil, "", err
	}
	token := NewToken()
	now := v.clock.Now().UTC()
	c = &Caller{Name: c.Name, DisplayName: c.DisplayName, Roles: slices.Clone(c.Roles), MTLSIdentity: c.MTLSIdentity,
		CreateTime: now, TokenHash: hashToken(token), TokenCreateTime: now, Revision: 1}
	ev := v.successEvent(ctx, c.Name, nil)
	if err := v.store.PutCaller(ctx, c, Condition{MustNotExist: true}, ev); err != nil {
		return nil, "", err
	}
	v.recorded(ctx, ev)
	return c, token, nil
}

// GetCaller returns a caller.
func (v *Vault) GetCaller(ctx context.Context, name string) (*Caller, error) {
	return v.store.GetCaller(ctx, name)
}

// ListCallers returns up to limit callers after after, and the name to
// continue after ("" at the end).
func (v *Vault) ListCallers(ctx context.Context, after string, limit int) ([]*Caller, string, error) {
	out, err := v.store.ListCallers(ctx, after, limit+1)
	if err != nil {
		return nil, "", err
	}
	if len(out) <= limit {
		return out, "", nil
	}
	return out[:limit], out[limit-1].Name, nil
}

// DeleteCaller removes a caller; its token stops working at once.
func (v *Vault) DeleteCaller(ctx context.Context, name string) error {
	ev := v.successEvent(ctx, name, nil)
	if err := v.store.DeleteCaller(ctx, name, ev); err != nil {
		return err
	}
	v.recorded(ctx, ev)
	return nil
}

// RotateCallerToken gives a caller a new token; the old one stops working
// when this returns.
func (v *Vault) RotateCallerToken(ctx context.Context, name string) (*Caller, string, error) {
	cur, err := v.store.GetCaller(ctx, name)
	if err != nil {
		return nil, "", err
	}
	token := NewToken()
	next := *cur
	next.TokenHash = hashToken(token)
	next.TokenCreateTime = v.clock.Now().UTC()
	next.Revision = cur.Revision + 1
	ev := v.successEvent(ctx, name, nil)
	if err := v.store.PutCaller(ctx, &next, Condition{Revision: cur.Revision}, ev); err != nil {
		return nil, "", err
	}
	v.recorded(ctx, ev)
	return &next, token, nil
}

// TokenFingerprint names a caller's token in audit records and Get/List
// responses without revealing it (HMAC under the vault's fingerprint key).
func (v *Vault) TokenFingerprint(c *Caller) string {
	return v.fingerprint(c.TokenHash)
}

func validateCaller(c *Caller) error {
	var vs []authtypes.FieldViolation
	if _, ok := ParseCallerName(c.Name); !ok {
		vs = append(vs, authtypes.FieldViolation{Field: "caller_id", Description: "must match " + idPattern.String()})
	}
	if len(c.DisplayName) > MaxDisplayNameLen {
		vs = append(vs, authtypes.FieldViolation{Field: "caller.display_name", Description: fmt.Sprintf("must be at most %d bytes", MaxDisplayNameLen)})
	}
	if len(c.Roles) == 0 {
		vs = append(vs, authtypes.FieldViolation{Field: "caller.roles", Description: "at least one role is required"})
	}
	for i, r := range c.Roles {
		if r < RoleAdmin || r > RoleAuditor {
			vs = append(vs, authtypes.FieldViolation{Field: fmt.Sprintf("caller.roles[%d]", i), Description: "unknown role"})
		}
	}
	if len(c.MTLSIdentity) > 1024 || strings.ContainsAny(c.MTLSIdentity, "\x00\r\n") {
		vs = append(vs, authtypes.FieldViolation{Field: "caller.mtls_identity", Description: "must be a URI or DNS name of at most 1024 bytes"})
	}
	if len(vs) > 0 {
		return &authtypes.ValidationError{Violations: vs}
	}
	return nil
}
