// Package authtypes knows the credential types: for each, what its
// definition and secret look like, how they are validated, and how they
// turn into the parameters of an outbound request; and the OAuth 2.0
// protocol (grants, PKCE, refresh, token exchange, revocation).
//
// Each type's whole behaviour is in its own file (apikey.go, bearer.go,
// basic.go, secret.go, oauth2.go); placement.go expands templates. The
// package imports no storage and no gRPC.
package authtypes

import (
	"fmt"
	"strings"
)

// Type is a credential type. The numbers are the API's CredentialType.
type Type int

// Credential types.
const (
	TypeUnspecified Type = 0
	TypeAPIKey      Type = 1
	TypeBearer      Type = 2
	TypeBasic       Type = 3
	TypeSecret      Type = 4
	TypeOAuth2      Type = 5
)

var typeNames = enumText[Type]{what: "credential type", names: map[Type]string{
	TypeAPIKey: "api_key", TypeBearer: "bearer", TypeBasic: "basic", TypeSecret: "secret", TypeOAuth2: "oauth2"}}

func (t Type) String() string { return typeNames.String(t) }

// MarshalText encodes a type by name, for storage.
func (t Type) MarshalText() ([]byte, error) { return typeNames.marshal(t) }

// UnmarshalText decodes a type name.
func (t *Type) UnmarshalText(b []byte) error { return typeNames.unmarshal(b, t) }

// Location says where a parameter goes. The numbers are the API's Location.
type Location int

// Locations.
const (
	LocationUnspecified Location = 0
	LocationHeader      Location = 1
	LocationQuery       Location = 2
	LocationBody        Location = 3
	LocationPath        Location = 4
)

var locationNames = enumText[Location]{what: "location", names: map[Location]string{
	LocationHeader: "header", LocationQuery: "query", LocationBody: "body", LocationPath: "path"}}

func (l Location) String() string { return locationNames.String(l) }

// MarshalText encodes a location by name.
func (l Location) MarshalText() ([]byte, error) { return locationNames.marshal(l) }

// UnmarshalText decodes a location name.
func (l *Location) UnmarshalText(b []byte) error { return locationNames.unmarshal(b, l) }

// enumText is the text form of one of the package's enums, used in storage
// (JSON) and logs, so that stored records read by name, not by number.
type enumText[T ~int] struct {
	what  string
	names map[T]string
}

func (e enumText[T]) String(v T) string {
	if n, ok := e.names[v]; ok {
		return n
	}
	return fmt.Sprintf("%s(%d)", strings.ReplaceAll(e.what, " ", "_"), int(v))
}

func (e enumText[T]) marshal(v T) ([]byte, error) {
	if n, ok := e.names[v]; ok {
		return []byte(n), nil
	}
	return nil, fmt.Errorf("unknown %s %d", e.what, int(v))
}

func (e enumText[T]) unmarshal(b []byte, v *T) error {
	for k, n := range e.names {
		if n == string(b) {
			*v = k
			return nil
		}
	}
	return fmt.Errorf("unknown %s %q", e.what, truncate(string(b), 32))
}

// known reports whether v is a value of the enum.
func (e enumText[T]) known(v T) bool {
	_, ok := e.names[v]
	return ok
}

// ParameterTemplate places a secret on an outbound request.
type ParameterTemplate struct {
	Location      Location `json:"location"`
	Name          string   `json:"name"`
	ValueTemplate string   `json:"value_template"`
}

// Parameter is an expanded template. Value is secret material.
type Parameter struct {
	Location Location
	Name     string
	Value    string
}

// Definition is the non-secret part of a credential that authtypes needs.
type Definition struct {
	Type      Type
	Placement []ParameterTemplate
	OAuth2    *OAuth2Config
}

// Secret is secret material: exactly one field is set, matching the type.
type Secret struct {
	APIKey  *APIKeySecret  `json:"api_key,omitempty"`
	Bearer  *BearerSecret  `json:"bearer,omitempty"`
	Basic   *BasicSecret   `json:"basic,omitempty"`
	Generic *GenericSecret `json:"secret,omitempty"`
	OAuth2  *OAuth2Secret  `json:"oauth2,omitempty"`
}

// Type is the type of the one kind set, or TypeUnspecified when none or
// several are.
func (s Secret) Type() Type {
	var t Type
	n := 0
	for _, k := range []struct {
		set bool
		t   Type
	}{{s.APIKey != nil, TypeAPIKey}, {s.Bearer != nil, TypeBearer}, {s.Basic != nil, TypeBasic}, {s.Generic != nil, TypeSecret}, {s.OAuth2 != nil, TypeOAuth2}} {
		if k.set {
			t, n = k.t, n+1
		}
	}
	if n != 1 {
		return TypeUnspecified
	}
	return t
}

// kind is one credential type's behaviour; each lives in its own file.
type kind interface {
	// secretField is the name of the type's secret kind in the API
	// ("api_key", "bearer", ...).
	secretField() string
	// placeholders are the template variables the type offers.
	placeholders() []string
	// defaultPlacement is used when a definition gives none (nil: required).
	defaultPlacement() []ParameterTemplate
	// validateSecret checks the type's secret; prefix is e.g. "secret.api_key".
	validateSecret(prefix string, s Secret, d Definition) []FieldViolation
	// value returns the value of placeholder name for a secret, computed
	// only when a template asks for it (expansion runs on every resolve).
	value(s Secret, name string) (string, bool)
	// fields and fromFields are the secret's stored form (see codec.go).
	fields(s Secret) []string
	fromFields(f []string) (Secret, bool)
}

var kinds = map[Type]kind{
	TypeAPIKey: apiKeyKind{},
	TypeBearer: bearerKind{},
	TypeBasic:  basicKind{},
	TypeSecret: genericKind{},
	TypeOAuth2: oauth2Kind{},
}

// MaxSecretValueLen bounds each secret string.
const MaxSecretValueLen = 16 << 10

// checkSecretValue checks one secret string without ever quoting it.
func checkSecretValue(field, v string, required bool) []FieldViolation {
	switch {
	case v == "" && required:
		return []FieldViolation{{Field: field, Description: "is required"}}
	case len(v) > MaxSecretValueLen:
		return []FieldViolation{{Field: field, Description: fmt.Sprintf("must be at most %d bytes", MaxSecretValueLen)}}
	case strings.ContainsRune(v, 0):
		return []FieldViolation{{Field: field, Description: "must not contain NUL"}}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
