// Command credvaultd is the credvault daemon and its offline tools.
//
//	credvaultd serve [flags]     run the vault (see credvaultd serve --help)
//	credvaultd audit verify      check the audit chain of a stopped vault
//
// Every flag can also be set with an environment variable CREDVAULT_<NAME>,
// for example CREDVAULT_DATA_DIR for --data-dir; a flag on the command line
// wins over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `credvaultd — the credvault credentials vault

Usage:
  credvaultd serve [flags]    run the vault on its defaults (./data, 127.0.0.1:7443 and :7444)
  credvaultd audit verify     check the audit hash chain of a stopped vault (--data-dir)
  credvaultd backup --to F    stream a consistent online backup from a running vault
  credvaultd keys rewrap      re-wrap every data key under a new KMS key or local key (offline)
  credvaultd restore --from F check a backup and put it into an empty --data-dir

Run "credvaultd serve --help" for the flags. Every flag is also an environment
variable CREDVAULT_<NAME> (--data-dir is CREDVAULT_DATA_DIR).
`

// run dispatches a subcommand and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "audit":
		err = auditCmd(ctx, args[1:], stdout, stderr)
	case "keys":
		err = keysCmd(ctx, args[1:], stderr)
	case "backup":
		err = backupCmd(ctx, args[1:], stderr)
	case "restore":
		err = restoreCmd(ctx, args[1:], stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "credvaultd: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "credvaultd %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// parseFlags parses args into fs after filling every flag that was not
// given on the command line from CREDVAULT_<NAME>.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok && !given[f.Name] {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
			}
		}
	})
	return errors.Join(errs...)
}

func envName(flagName string) string {
	return "CREDVAULT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
