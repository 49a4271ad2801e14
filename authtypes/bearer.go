package authtypes

// Bearer token: a static token, sent by default as "Authorization: Bearer".

// BearerSecret is a static bearer token; placeholder {token}.
type BearerSecret struct {
	Token string `json:"token"`
}

type bearerKind struct{}

func (bearerKind) secretField() string    { return "bearer" }
func (bearerKind) placeholders() []string { return []string{"token"} }

func (bearerKind) defaultPlacement() []ParameterTemplate {
	return []ParameterTemplate{{Location: LocationHeader, Name: "Authorization", ValueTemplate: "Bearer {token}"}}
}

func (bearerKind) validateSecret(prefix string, s Secret, _ Definition) []FieldViolation {
	return checkSecretValue(prefix+".token", s.Bearer.Token, true)
}

func (bearerKind) value(s Secret, name string) (string, bool) {
	if name != "token" {
		return "", false
	}
	return s.Bearer.Token, true
}

func (bearerKind) fields(s Secret) []string { return []string{s.Bearer.Token} }

func (bearerKind) fromFields(f []string) (Secret, bool) {
	if len(f) != 1 {
		return Secret{}, false
	}
	return Secret{Bearer: &BearerSecret{Token: f[0]}}, true
}
