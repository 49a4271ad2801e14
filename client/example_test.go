package client_test

import (
	"context"
	"fmt"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/credvault/credvault/client"
	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
)

// bearer is per-RPC credentials carrying a resolver's caller token.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// Use TLS (and RequireTransportSecurity true) outside loopback.
func (bearer) RequireTransportSecurity() bool { return false }

// Example calls the weather API with the credential credentials/weather:
// the transport resolves it through the vault and adds ?appid=… to the
// request, caching it until the vault's expire_time.
func Example() {
	conn, err := grpc.NewClient("127.0.0.1:7443",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer("cvt_...resolver token...")))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	httpClient := &http.Client{Transport: &client.Transport{
		Resolver:   credvaultv1.NewResolverServiceClient(conn),
		Credential: "credentials/weather",
	}}
	resp, err := httpClient.Get("https://api.weather.example/v1/now?city=Oslo")
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
}
