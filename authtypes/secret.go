package authtypes

// Generic secret: an opaque value with no default placement; the
// definition must say where it goes.

// GenericSecret is an opaque secret; placeholder {secret}.
type GenericSecret struct {
	Value string `json:"value"`
}

type genericKind struct{}

func (genericKind) secretField() string                   { return "secret" }
func (genericKind) placeholders() []string                { return []string{"secret"} }
func (genericKind) defaultPlacement() []ParameterTemplate { return nil }

func (genericKind) validateSecret(prefix string, s Secret, _ Definition) []FieldViolation {
	return checkSecretValue(prefix+".value", s.Generic.Value, true)
}

func (genericKind) value(s Secret, name string) (string, bool) {
	if name != "secret" {
		return "", false
	}
	return s.Generic.Value, true
}

func (genericKind) fields(s Secret) []string { return []string{s.Generic.Value} }

func (genericKind) fromFields(f []string) (Secret, bool) {
	if len(f) != 1 {
		return Secret{}, false
	}
	return Secret{Generic: &GenericSecret{Value: f[0]}}, true
}
