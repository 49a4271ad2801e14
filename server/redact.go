package server

import (
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
)

// Redact returns a copy of m with every field marked (credvault.v1.sensitive)
// cleared, at any depth (nested messages, lists and map values). It is the
// only way a payload reaches a log: the proto runtime ignores debug_redact
// (golang/protobuf#1655), so nothing else can be trusted to hide a secret.
func Redact(m proto.Message) proto.Message {
	if m == nil {
		return nil
	}
	c := proto.Clone(m)
	redact(c.ProtoReflect())
	return c
}

func redact(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if isSensitive(fd) {
			m.Clear(fd)
			return true
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				redact(l.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				redact(mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			redact(v.Message())
		}
		return true
	})
}

func isSensitive(fd protoreflect.FieldDescriptor) bool {
	opts := fd.Options()
	if opts == nil {
		return false
	}
	s, _ := proto.GetExtension(opts, credvaultv1.E_Sensitive).(bool)
	return s
}

// redactedJSON renders a message for a log line, sensitive fields removed.
func redactedJSON(m proto.Message) string {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(Redact(m))
	if err != nil {
		return "<unprintable>"
	}
	return string(b)
}
