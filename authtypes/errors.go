package authtypes

import "strings"

// FieldViolation names a field by its API path (for example
// "credential.placement[1].value_template" or "secret.api_key.key") and says
// what is wrong with it. Descriptions never quote a value: values may be
// secrets.
type FieldViolation struct {
	Field       string
	Description string
}

// ValidationError is invalid input, field by field.
type ValidationError struct {
	Violations []FieldViolation
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + ": " + v.Description
	}
	return "invalid argument: " + strings.Join(parts, "; ")
}
