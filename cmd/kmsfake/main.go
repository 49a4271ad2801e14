// Command kmsfake runs credvault's AWS KMS fake (package awskmstest) as a
// process, for end-to-end tests and for trying the awskms key provider
// without AWS:
//
//	kmsfake --addr 127.0.0.1:0 --state kms-state.json
//
// On start it makes sure a key with the alias alias/credvault exists, then
// prints one line to stdout:
//
//	ready <endpoint URL> <key ARN>
//
// Point credvaultd at it with the standard AWS environment:
// AWS_ENDPOINT_URL_KMS=<endpoint URL> AWS_REGION=us-east-1
// AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x, and --kms-key-id
// alias/credvault. It exits on SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/credvault/credvault/vault/keyprovider/awskms/awskmstest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	state := flag.String("state", "", "JSON file the keys persist to (so a restarted fake still decrypts)")
	alias := flag.String("alias", "alias/credvault", "alias of the key to create if missing")
	flag.Parse()
	f, err := awskmstest.New(*state)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kmsfake:", err)
		os.Exit(1)
	}
	id, err := f.EnsureAlias(*alias)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kmsfake:", err)
		os.Exit(1)
	}
	if err := f.Start(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "kmsfake:", err)
		os.Exit(1)
	}
	fmt.Printf("ready %s %s\n", f.URL(), awskmstest.ARN(id))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	f.Stop()
}
