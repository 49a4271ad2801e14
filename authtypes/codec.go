package authtypes

import (
	"encoding/binary"
	"errors"
)

// The stored (then sealed) form of a secret. It is decoded on every
// resolve, so it is a small binary format rather than JSON:
//
//	byte     format version (codecV1)
//	byte     the type (Type)
//	uvarint  number of fields, then for each: uvarint length, bytes
//
// The fields and their order are each type's (fields/fromFields in its
// file). Every length is checked against what is left before slicing.
const codecV1 = 0xB1

// maxEncodedFields bounds what a decoder accepts.
const maxEncodedFields = 16

// ErrSecretEncoding means stored secret bytes do not decode.
var ErrSecretEncoding = errors.New("secret encoding is invalid")

// MarshalBinary encodes the secret for sealing.
func (s Secret) MarshalBinary() ([]byte, error) {
	t := s.Type()
	k, ok := kinds[t]
	if !ok {
		return nil, errors.New("secret has no kind, or several")
	}
	fields := k.fields(s)
	n := 3
	for _, f := range fields {
		n += binary.MaxVarintLen64 + len(f)
	}
	b := make([]byte, 0, n)
	b = append(b, codecV1, byte(t))
	b = binary.AppendUvarint(b, uint64(len(fields)))
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b, nil
}

// UnmarshalBinary decodes a secret encoded by MarshalBinary.
func (s *Secret) UnmarshalBinary(b []byte) error {
	if len(b) < 3 || b[0] != codecV1 {
		return ErrSecretEncoding
	}
	k, ok := kinds[Type(b[1])]
	if !ok {
		return ErrSecretEncoding
	}
	b = b[2:]
	count, n := binary.Uvarint(b)
	if n <= 0 || count > maxEncodedFields {
		return ErrSecretEncoding
	}
	b = b[n:]
	fields := make([]string, count)
	for i := range fields {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return ErrSecretEncoding
		}
		fields[i] = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	if len(b) != 0 {
		return ErrSecretEncoding
	}
	out, ok := k.fromFields(fields)
	if !ok {
		return ErrSecretEncoding
	}
	*s = out
	return nil
}
