package vault

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"

	"github.com/credvault/credvault/authtypes"
)

// Credential is the stored record of a credential. It holds the secret only
// sealed (Secret.Sealed); nothing else in it is secret.
type Credential struct {
	Name           string                        `json:"name"`
	DisplayName    string                        `json:"display_name,omitempty"`
	Description    string                        `json:"description,omitempty"`
	Labels         map[string]string             `json:"labels,omitempty"`
	Type           authtypes.Type                `json:"type"`
	Placement      []authtypes.ParameterTemplate `json:"placement,omitempty"`
	AllowedCallers []string                      `json:"allowed_callers,omitempty"`
	AllowedHosts   []string                      `json:"allowed_hosts,omitempty"`
	OAuth2         *authtypes.OAuth2Config       `json:"oauth2,omitempty"`
	CreateTime     time.Time                     `json:"create_time"`
	UpdateTime     time.Time                     `json:"update_time"`
	// Revision starts at 1 and increments on every write; the etag is
	// derived from it.
	Revision int64       `json:"revision"`
	Secret   SecretState `json:"secret"`
}

// SecretState is the sealed secret and what may be said about it.
type SecretState struct {
	// Version starts at 1 and increments on every rotation. It is bound into
	// the ciphertext's additional data and the key's encryption context.
	Version     int64     `json:"version"`
	SetTime     time.Time `json:"set_time"`
	Fingerprint string    `json:"fingerprint"`
	// Sealed is the envelope blob: the wrapped data key and the AES-GCM
	// ciphertext of the JSON-encoded authtypes.Secret.
	Sealed []byte `json:"sealed"`

	// OAuth 2.0 token state; zero for other types.
	TokenStatus       TokenStatus `json:"token_status,omitempty"`
	AccessTokenExpiry time.Time   `json:"access_token_expiry,omitzero"`
	HasRefreshToken   bool        `json:"has_refresh_token,omitempty"`
	HasClientSecret   bool        `json:"has_client_secret,omitempty"`
	LastRefreshTime   time.Time   `json:"last_refresh_time,omitzero"`
	// LastError is an RFC 6749 error code and description, never a raw
	// provider response.
	LastError string `json:"last_error,omitempty"`
	// RefreshPending is set, durably, before a refresh-token request and
	// cleared with the commit of its result: a vault that stops in between
	// finds it on start-up and knows the stored refresh token may have
	// been consumed (see RecoverPendingRefreshes).
	RefreshPending bool `json:"refresh_pending,omitempty"`
	// RefreshGeneration counts refresh attempts; the commit of a result
	// compares it, so a result is stored only over the state it started
	// from.
	RefreshGeneration int64 `json:"refresh_generation,omitempty"`
}

// TokenStatus is the state of an OAuth 2.0 credential's tokens.
type TokenStatus int

// Token states; the numbers match the API's TokenStatus enum.
const (
	TokenStatusNone                  TokenStatus = 0
	TokenStatusActive                TokenStatus = 1
	TokenStatusAuthorizationRequired TokenStatus = 2
	TokenStatusPendingAuthorization  TokenStatus = 3
	TokenStatusRefreshFailed         TokenStatus = 4
)

// Etag is an opaque version of the record for conditional writes (AIP-154).
// It covers the create time too, so an etag of a deleted credential does not
// match a new credential of the same name.
func (c *Credential) Etag() string {
	h := sha256.New()
	h.Write([]byte(c.Name))
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(c.CreateTime.UnixNano()))
	binary.BigEndian.PutUint64(b[8:], uint64(c.Revision))
	h.Write(b[:])
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Definition is the part of the record that authtypes validates and expands.
func (c *Credential) Definition() authtypes.Definition {
	return authtypes.Definition{Type: c.Type, Placement: c.Placement, OAuth2: c.OAuth2}
}

// Clone returns a deep copy, so a caller can change it without touching a
// record another goroutine holds.
func (c *Credential) Clone() *Credential { return c.clone() }

func (c *Credential) clone() *Credential {
	out := *c
	out.Labels = cloneMap(c.Labels)
	out.Placement = append([]authtypes.ParameterTemplate(nil), c.Placement...)
	out.AllowedCallers = append([]string(nil), c.AllowedCallers...)
	out.AllowedHosts = append([]string(nil), c.AllowedHosts...)
	if c.OAuth2 != nil {
		o := *c.OAuth2
		o.Scopes = append([]string(nil), o.Scopes...)
		o.ExtraParams = cloneMap(o.ExtraParams)
		out.OAuth2 = &o
	}
	out.Secret.Sealed = append([]byte(nil), c.Secret.Sealed...)
	return &out
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Role is a set of permissions of a caller.
type Role int

// Roles; the numbers match the API's Role enum.
const (
	RoleUnspecified Role = 0
	RoleAdmin       Role = 1
	RoleResolver    Role = 2
	RoleAuditor     Role = 3
)

// Caller is a principal that may call the vault. Its token is stored only as
// a SHA-256 hash: tokens are 256-bit random values, so a plain hash cannot
// be reversed by guessing.
type Caller struct {
	Name            string    `json:"name"`
	DisplayName     string    `json:"display_name,omitempty"`
	Roles           []Role    `json:"roles"`
	MTLSIdentity    string    `json:"mtls_identity,omitempty"`
	CreateTime      time.Time `json:"create_time"`
	TokenHash       []byte    `json:"token_hash"`
	TokenCreateTime time.Time `json:"token_create_time"`
	Revision        int64     `json:"revision"`
}

// HasRole reports whether the caller holds role r.
func (c *Caller) HasRole(r Role) bool {
	for _, have := range c.Roles {
		if have == r {
			return true
		}
	}
	return false
}
