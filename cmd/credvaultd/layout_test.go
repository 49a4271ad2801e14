package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/credvault/credvault"

// TestImportRules checks DESIGN.md's dependency direction with go list:
// cmd → server → vault → authtypes, adapters only wired in by cmd, pure
// packages importing nothing of ours.
func TestImportRules(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	grpcLike := []string{"google.golang.org/grpc", module + "/gen/", module + "/server"}
	adapters := []string{module + "/vault/boltstore", module + "/vault/keyprovider/"}
	rules := []struct {
		pkg       string
		forbidden []string
		onlyOurs  []string // when not nil, the only packages of ours allowed (prefixes)
	}{
		{pkg: "./authtypes", forbidden: append(grpcLike, module+"/vault", "go.etcd.io/bbolt", "github.com/aws/")},
		{pkg: "./vault", forbidden: append(append(grpcLike, adapters...), "go.etcd.io/bbolt", "github.com/aws/")},
		{pkg: "./vault/envelope", onlyOurs: []string{}},
		{pkg: "./vault/boltstore", forbidden: append(grpcLike, module+"/vault/keyprovider/")},
		{pkg: "./vault/keyprovider/localkey", forbidden: append(grpcLike, module+"/vault/boltstore", module+"/vault/keyprovider/awskms")},
		{pkg: "./vault/keyprovider/awskms", forbidden: append(grpcLike, module+"/vault/boltstore", module+"/vault/keyprovider/localkey")},
		{pkg: "./server", forbidden: append(adapters, module+"/cmd/")},
		{pkg: "./client", onlyOurs: []string{module + "/gen/"}},
		{pkg: "./vault/auditlog", onlyOurs: []string{}},
	}
	for _, r := range rules {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../../"+strings.TrimPrefix(r.pkg, "./")).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", r.pkg, err, out)
		}
		self := module + strings.TrimPrefix(r.pkg, ".")
		for _, dep := range strings.Fields(string(out)) {
			if dep == self {
				continue
			}
			for _, f := range r.forbidden {
				if dep == strings.TrimSuffix(f, "/") || strings.HasPrefix(dep, f) {
					t.Errorf("%s imports %s, which DESIGN.md forbids", r.pkg, dep)
				}
			}
			if r.onlyOurs != nil && strings.HasPrefix(dep, module+"/") && !slices.ContainsFunc(r.onlyOurs, func(p string) bool { return strings.HasPrefix(dep, p) }) {
				t.Errorf("%s may import only %v of ours, but imports %s", r.pkg, r.onlyOurs, dep)
			}
		}
	}
}
