package authtypes

// API key: one opaque key, sent by default as X-API-Key.

// APIKeySecret is an API key; placeholder {api_key}.
type APIKeySecret struct {
	Key string `json:"key"`
}

type apiKeyKind struct{}

func (apiKeyKind) secretField() string    { return "api_key" }
func (apiKeyKind) placeholders() []string { return []string{"api_key"} }

func (apiKeyKind) defaultPlacement() []ParameterTemplate {
	return []ParameterTemplate{{Location: LocationHeader, Name: "X-API-Key", ValueTemplate: "{api_key}"}}
}

func (apiKeyKind) validateSecret(prefix string, s Secret, _ Definition) []FieldViolation {
	return checkSecretValue(prefix+".key", s.APIKey.Key, true)
}

func (apiKeyKind) value(s Secret, name string) (string, bool) {
	if name != "api_key" {
		return "", false
	}
	return s.APIKey.Key, true
}

func (apiKeyKind) fields(s Secret) []string { return []string{s.APIKey.Key} }

func (apiKeyKind) fromFields(f []string) (Secret, bool) {
	if len(f) != 1 {
		return Secret{}, false
	}
	return Secret{APIKey: &APIKeySecret{Key: f[0]}}, true
}
