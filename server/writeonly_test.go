package server_test

import (
	"regexp"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
)

// responseExemptions are the only places a response may carry a field
// marked sensitive (DESIGN.md, "Write-only rule").
var responseExemptions = map[string]protoreflect.FullName{
	"credvault.v1.ResolverService.ResolveCredential": "credvault.v1.ResolvedParameter.value",
	"credvault.v1.CallerService.CreateCaller":        "credvault.v1.CreateCallerResponse.token",
	"credvault.v1.CallerService.RotateCallerToken":   "credvault.v1.RotateCallerTokenResponse.token",
}

func sensitive(fd protoreflect.FieldDescriptor) bool {
	return proto.GetExtension(fd.Options(), credvaultv1.E_Sensitive).(bool)
}

// credvaultServices lists every service of package credvault.v1 in the
// registry, so a new service is covered without touching this test.
func credvaultServices(t *testing.T) []protoreflect.ServiceDescriptor {
	var out []protoreflect.ServiceDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("credvault.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			out = append(out, fd.Services().Get(i))
		}
		return true
	})
	if len(out) < 5 {
		t.Fatalf("found %d credvault.v1 services, want at least 5: is gen/ linked in?", len(out))
	}
	return out
}

// TestWriteOnlySchema walks every message reachable from every RPC's
// response type and fails if any field is marked sensitive, except the
// exemptions. Any/Struct would let a handler smuggle anything, so they fail
// too.
func TestWriteOnlySchema(t *testing.T) {
	for _, sd := range credvaultServices(t) {
		for i := 0; i < sd.Methods().Len(); i++ {
			m := sd.Methods().Get(i)
			rpc := string(m.FullName())
			walkResponse(t, rpc, m.Output(), map[protoreflect.FullName]bool{})
		}
	}
}

func walkResponse(t *testing.T, rpc string, md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) {
	if seen[md.FullName()] {
		return
	}
	seen[md.FullName()] = true
	switch md.FullName() {
	case "google.protobuf.Any", "google.protobuf.Struct", "google.protobuf.Value":
		t.Errorf("%s: response can carry %s, which can hold anything", rpc, md.FullName())
	}
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		if sensitive(fd) && responseExemptions[rpc] != fd.FullName() {
			t.Errorf("%s: response reaches sensitive field %s", rpc, fd.FullName())
		}
		if fd.Message() != nil { // also covers map entries' values
			walkResponse(t, rpc, fd.Message(), seen)
		}
	}
}

// TestSecretLookingFieldsAreSensitive fails when a string or bytes field is
// named like secret material but not marked sensitive, so a new secret field
// cannot be added without the mark that keeps it out of responses and logs.
func TestSecretLookingFieldsAreSensitive(t *testing.T) {
	secretName := regexp.MustCompile(`(^|_)(secret|token|password|api_key|key)$`)
	notSecret := map[protoreflect.Name]bool{"page_token": true, "next_page_token": true}
	protoregistry.GlobalFiles.RangeFilesByPackage("credvault.v1", func(fd protoreflect.FileDescriptor) bool {
		var walk func(protoreflect.MessageDescriptors)
		walk = func(ms protoreflect.MessageDescriptors) {
			for i := 0; i < ms.Len(); i++ {
				md := ms.Get(i)
				if md.IsMapEntry() {
					continue
				}
				for j := 0; j < md.Fields().Len(); j++ {
					f := md.Fields().Get(j)
					isText := f.Kind() == protoreflect.StringKind || f.Kind() == protoreflect.BytesKind
					if isText && secretName.MatchString(string(f.Name())) && !notSecret[f.Name()] && !sensitive(f) {
						t.Errorf("%s looks like a secret but is not marked (credvault.v1.sensitive)", f.FullName())
					}
				}
				walk(md.Messages())
			}
		}
		walk(fd.Messages())
		return true
	})
}

// TestExemptionsStillExist keeps the exemption list honest: each names a
// real sensitive field of that RPC's response.
func TestExemptionsStillExist(t *testing.T) {
	for rpc, field := range responseExemptions {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(field)
		if err != nil {
			t.Errorf("exemption for %s: %v", rpc, err)
			continue
		}
		if fd, ok := d.(protoreflect.FieldDescriptor); !ok || !sensitive(fd) {
			t.Errorf("exemption %s is not a sensitive field", field)
		}
	}
}
