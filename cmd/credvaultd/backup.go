package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/credvault/credvault/server"
	"github.com/credvault/credvault/vault/boltstore"
)

// backupCmd runs `credvaultd backup --to FILE`: it streams an online,
// consistent snapshot from a running vault's HTTP side, writing FILE only
// once the whole snapshot arrived and checks out.
func backupCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	to := fs.String("to", "", "file to write the backup to (required)")
	url := fs.String("url", "http://127.0.0.1:7444", "the vault's HTTP base URL (--http-addr)")
	tokenFile := fs.String("token-file", "./data/admin.token", "file holding an admin caller token")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *to == "" {
		return errors.New("--to is required")
	}
	token, err := os.ReadFile(*tokenFile)
	if err != nil {
		return fmt.Errorf("reading the admin token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(*url, "/")+server.BackupPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reaching the vault: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("the vault answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	tmp := *to + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	n, err := io.Copy(f, &progress{r: resp.Body, log: log, every: time.Second, tty: terminal(stderr)})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = boltstore.CheckFile(tmp)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup incomplete: %w", err)
	}
	if err := os.Rename(tmp, *to); err != nil {
		return err
	}
	log.Info("backup written", "file", *to, "bytes", n)
	return nil
}

// restoreCmd runs `credvaultd restore --from FILE --data-dir DIR`: it checks
// a backup (bbolt consistency, the audit chain) and puts it in place in a
// data dir that holds no database. The same key provider is needed to read
// it: copy master.key along (local), or use the same KMS key.
func restoreCmd(_ context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "backup file (required)")
	dataDir := fs.String("data-dir", "./data", "data directory to restore into; must hold no credvault.db")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *from == "" {
		return errors.New("--from is required")
	}
	if err := boltstore.CheckFile(*from); err != nil {
		return err
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return err
	}
	dst := filepath.Join(*dataDir, boltstore.FileName)
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("%s exists: restore only into a data dir without a database", dst)
	}
	// A journal without its database holds the audit events that database
	// acknowledged before it stopped uncleanly; it belongs with that
	// database, not with the backup.
	if _, err := os.Stat(dst + boltstore.JournalSuffix); err == nil {
		return fmt.Errorf("%s exists: it holds audit events of the database that was here, which stopped without closing; move it away together with that database (opening that database once folds it in), then restore", dst+boltstore.JournalSuffix)
	}
	in, err := os.Open(*from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "restored %s into %s\nthe vault needs the key provider it was created with: for the local provider, copy master.key into %s; for AWS KMS, the same key\n",
		*from, dst, *dataDir)
	return nil
}

// progress shows how far a long copy got: a line redrawn in place on a
// terminal, a log line at most every interval otherwise.
type progress struct {
	r     io.Reader
	log   *slog.Logger
	every time.Duration
	tty   io.Writer // set when stderr is a terminal
	n     int64
	last  time.Time
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	switch {
	case p.tty != nil && (time.Since(p.last) >= 100*time.Millisecond || err != nil):
		p.last = time.Now()
		fmt.Fprintf(p.tty, "\rbackup: %8.1f MiB", float64(p.n)/(1<<20))
		if err != nil {
			fmt.Fprintln(p.tty)
		}
	case p.tty == nil && time.Since(p.last) >= p.every:
		p.last = time.Now()
		p.log.Info("backup in progress", "bytes", p.n)
	}
	return n, err
}

// terminal returns w when it is a terminal (a character device), else nil.
func terminal(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return w
}
