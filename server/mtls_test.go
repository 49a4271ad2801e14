package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/credvault/credvault/authtypes"
	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/vault"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) issue(t *testing.T, uri string, ips ...net.IP) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	if uri != "" {
		u, _ := url.Parse(uri)
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestMTLSCallers: with a client CA, a verified client certificate whose URI
// SAN is a caller's mTLS identity authenticates as that caller, no token
// needed; a certificate from another CA does not get in.
func TestMTLSCallers(t *testing.T) {
	ca := newCA(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "", net.IPv4(127, 0, 0, 1))},
		ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, func(c *envConfig) {
		c.GRPCOptions = append(c.GRPCOptions, grpc.Creds(credentials.NewTLS(serverTLS)))
		c.Listener = lis
	})
	ctx := context.Background()
	if _, _, err := e.vault.CreateCaller(ctx, &vault.Caller{Name: "callers/billing", Roles: []vault.Role{vault.RoleResolver}, MTLSIdentity: "spiffe://example.org/billing"}); err != nil {
		t.Fatal(err)
	}
	// The in-process connection speaks no TLS; set up through the vault.
	if _, err := e.vault.CreateCredential(ctx, &vault.Credential{Name: "credentials/m", Type: authtypes.TypeAPIKey, AllowedCallers: []string{"callers/billing"}},
		authtypes.Secret{APIKey: &authtypes.APIKeySecret{Key: "k-m"}}); err != nil {
		t.Fatal(err)
	}
	dial := func(cert *tls.Certificate) credvaultv1.ResolverServiceClient {
		conf := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			conf.Certificates = []tls.Certificate{*cert}
		}
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(conf)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return credvaultv1.NewResolverServiceClient(conn)
	}
	good := ca.issue(t, "spiffe://example.org/billing")
	r, err := dial(&good).ResolveCredential(ctx, &credvaultv1.ResolveCredentialRequest{Name: "credentials/m"})
	if err != nil || r.GetParameters()[0].GetValue() != "k-m" {
		t.Fatalf("resolve with the billing certificate = %v, %v", r, err)
	}
	unknown := ca.issue(t, "spiffe://example.org/nobody")
	if _, err := dial(&unknown).ResolveCredential(ctx, &credvaultv1.ResolveCredentialRequest{Name: "credentials/m"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("resolve with an unknown identity = %v, want Unauthenticated", err)
	}
	forged := newCA(t).issue(t, "spiffe://example.org/billing")
	if _, err := dial(&forged).ResolveCredential(ctx, &credvaultv1.ResolveCredentialRequest{Name: "credentials/m"}); err == nil {
		t.Error("a certificate from another CA got in")
	}
	if _, err := dial(nil).ResolveCredential(ctx, &credvaultv1.ResolveCredentialRequest{Name: "credentials/m"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("resolve with neither certificate nor token = %v, want Unauthenticated", err)
	}
}
