package authtypes

import (
	"encoding/base64"
	"strings"
)

// Basic auth (RFC 7617): a username and password, sent by default as
// "Authorization: Basic base64(username:password)".

// BasicSecret is a username and password; placeholders {username},
// {password} and {basic}.
type BasicSecret struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type basicKind struct{}

func (basicKind) secretField() string    { return "basic" }
func (basicKind) placeholders() []string { return []string{"username", "password", "basic"} }

func (basicKind) defaultPlacement() []ParameterTemplate {
	return []ParameterTemplate{{Location: LocationHeader, Name: "Authorization", ValueTemplate: "Basic {basic}"}}
}

func (basicKind) validateSecret(prefix string, s Secret, _ Definition) []FieldViolation {
	vs := checkSecretValue(prefix+".username", s.Basic.Username, true)
	if strings.Contains(s.Basic.Username, ":") {
		// RFC 7617 section 2: "a user-id containing a colon character is invalid".
		vs = append(vs, FieldViolation{Field: prefix + ".username", Description: "must not contain a colon (RFC 7617)"})
	}
	return append(vs, checkSecretValue(prefix+".password", s.Basic.Password, true)...)
}

func (basicKind) value(s Secret, name string) (string, bool) {
	b := s.Basic
	switch name {
	case "username":
		return b.Username, true
	case "password":
		return b.Password, true
	case "basic":
		return base64.StdEncoding.EncodeToString([]byte(b.Username + ":" + b.Password)), true
	}
	return "", false
}

func (basicKind) fields(s Secret) []string { return []string{s.Basic.Username, s.Basic.Password} }

func (basicKind) fromFields(f []string) (Secret, bool) {
	if len(f) != 2 {
		return Secret{}, false
	}
	return Secret{Basic: &BasicSecret{Username: f[0], Password: f[1]}}, true
}
