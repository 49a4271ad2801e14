// Package e2e starts the built credvaultd and talks to it as its users do:
// grpcurl as an admin types it, the KMS fake as a separate process, and (in
// later tests) a real OAuth 2.0 server.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

var (
	binDir  string // built binaries
	buildMu sync.Mutex
	built   = map[string]error{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "credvault-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// builtBinary builds ./cmd/<name> once per test run and returns its path.
func builtBinary(t *testing.T, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	err, done := built[name]
	if !done {
		if out, berr := exec.Command("go", "build", "-o", filepath.Join(binDir, name), "../cmd/"+name).CombinedOutput(); berr != nil {
			err = fmt.Errorf("go build %s: %v\n%s", name, berr, out)
		}
		built[name] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(binDir, name)
}

// tool finds a tool that `make test` installs into .tools/bin.
func tool(t *testing.T, name string) string {
	t.Helper()
	local, _ := filepath.Abs(filepath.Join("..", ".tools", "bin", name))
	if _, err := os.Stat(local); err == nil {
		return local
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Fatalf("%s not found: run the tests with `make test`, which installs it into .tools/bin", name)
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// daemon is a running credvaultd.
type daemon struct {
	cmd      *exec.Cmd
	dataDir  string
	grpcAddr string
	httpAddr string
	logs     *lockedBuffer
	done     chan error
	killed   bool // stopped by the test with SIGKILL
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDaemon runs credvaultd serve on free loopback ports with dataDir,
// extra flags and environment, and waits until it serves.
func startDaemon(t *testing.T, dataDir string, env []string, flags ...string) *daemon {
	t.Helper()
	return startDaemonAt(t, dataDir, env, freeAddr(t), flags...)
}

// startDaemonAt is startDaemon with a chosen HTTP address (the OAuth
// callback must be known before the provider starts).
func startDaemonAt(t *testing.T, dataDir string, env []string, httpAddr string, flags ...string) *daemon {
	t.Helper()
	d := &daemon{dataDir: dataDir, grpcAddr: freeAddr(t), httpAddr: httpAddr, logs: &lockedBuffer{}, done: make(chan error, 1)}
	args := append([]string{"serve", "--data-dir", dataDir, "--grpc-addr", d.grpcAddr, "--http-addr", d.httpAddr}, flags...)
	d.cmd = exec.Command(builtBinary(t, "credvaultd"), args...)
	d.cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	d.cmd.Stderr = pw
	d.cmd.Stdout = d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			d.logs.Write([]byte(line + "\n"))
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "credvaultd serving" {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() { d.done <- d.cmd.Wait(); pw.Close() }()
	t.Cleanup(func() { d.stop(t) })
	select {
	case <-ready:
	case err := <-d.done:
		t.Fatalf("credvaultd exited before serving: %v\n%s", err, d.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("credvaultd did not start in 30s:\n%s", d.logs)
	}
	return d
}

// kill stops the daemon with SIGKILL, as a crash or an OOM kill would, and
// waits for it to exit.
func (d *daemon) kill(t *testing.T) {
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
	d.killed = true
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop(t *testing.T) {
	if d.killed || d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("credvaultd exited with %v\n%s", err, d.logs)
		}
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		t.Errorf("credvaultd did not stop within 30s of SIGTERM")
	}
}

func (d *daemon) adminToken(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// grpcurl runs grpcurl against the daemon with the given token and request
// body, and returns stdout, stderr and the exit code.
func (d *daemon) grpcurl(t *testing.T, token, method, body string) (string, string, int) {
	t.Helper()
	args := []string{"-plaintext"}
	if token != "" {
		args = append(args, "-H", "authorization: Bearer "+token)
	}
	if body != "" {
		args = append(args, "-d", body)
	}
	args = append(args, d.grpcAddr, method)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool(t, "grpcurl"), args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("grpcurl: %v", err)
	}
	return stdout.String(), stderr.String(), code
}

// dial opens a gRPC connection to the daemon, closed when the test ends.
func (d *daemon) dial(t *testing.T) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// withToken is a context carrying a caller token.
func withToken(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}
