// Command credvault-bench is the load harness behind `make bench`. In one
// run on one machine it starts credvaultd (the built binary, on its
// defaults but for ports and data dir) and reports:
//
//  1. throughput and p50/p99 latency of ResolveCredential (an API key, and
//     an OAuth 2.0 credential with a cached token) against the same
//     server's gRPC health Check as the baseline, same client, same
//     connections and concurrency (16 and 64), with the ratios, and the
//     server's CPU time per request (utime+stime of the process over the
//     run / requests);
//  2. key-provider (KMS) calls during N steady-state resolves, against the
//     KMS fake run as a process;
//  3. resolve latency and bbolt file size with 1k, 100k and 1M stored
//     credentials (seeded offline with Vault.BulkCreate), and start-up time
//     and resident memory at the largest;
//  4. CreateCredential throughput, sequential and concurrent;
//  5. a refresh storm: concurrent resolves of one expired OAuth 2.0
//     credential, the token requests it caused (must be 1) and the time
//     until all were answered.
//
// It prints the command line and the machine first, so a result can be
// reproduced.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/credvault/credvault/authtypes"
	credvaultv1 "github.com/credvault/credvault/gen/credvault/v1"
	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/boltstore"
	"github.com/credvault/credvault/vault/keyprovider/localkey"
)

type options struct {
	daemon, kmsfake string
	duration        time.Duration
	conns           int
	concurrency     []int
	scales          []int
	kmsResolves     int
	storm           int
	writes          int
	rounds          int
	sections        map[string]bool
	cpuProfile      string
}

// allSections are the parts of a run, in order; --sections picks some.
var allSections = []string{"throughput", "kms", "writes", "storm", "scale"}

func main() {
	var o options
	var conc, scales string
	flag.StringVar(&o.daemon, "credvaultd", "bin/credvaultd", "the daemon binary")
	flag.StringVar(&o.kmsfake, "kmsfake", "bin/kmsfake", "the KMS fake binary")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of each load run")
	flag.IntVar(&o.conns, "conns", 4, "gRPC connections shared by the workers")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of (health, api_key, oauth2) runs per concurrency, and of (uniform, hot set) runs per scale; figures are medians (errors are summed)")
	flag.StringVar(&conc, "concurrency", "16,64", "concurrent workers per run")
	flag.StringVar(&scales, "scale", "1000,100000,1000000", "stored credentials for the scale runs (empty: skip)")
	flag.IntVar(&o.kmsResolves, "kms-resolves", 10000, "steady-state resolves counted against KMS")
	flag.IntVar(&o.storm, "storm", 1000, "concurrent resolves in the refresh storm")
	flag.IntVar(&o.writes, "writes", 2000, "CreateCredential calls per write run")
	sections := flag.String("sections", strings.Join(allSections, ","), "the parts to run: "+strings.Join(allSections, ","))
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write the daemon's CPU profiles to PREFIX-health.prof and PREFIX-resolve.prof (health Checks and api_key resolves at the highest concurrency) and PREFIX-uniform.prof (uniform resolves at the largest scale), and its allocations so far before and after the api_key run to PREFIX-allocs-before.prof and PREFIX-allocs.prof (collected first, so they are current; compare them with pprof -diff_base -sample_index=alloc_space)")
	flag.Parse()
	o.sections = map[string]bool{}
	for _, s := range strings.Split(*sections, ",") {
		if !slices.Contains(allSections, s) {
			fmt.Fprintf(os.Stderr, "credvault-bench: unknown section %q (have %s)\n", s, strings.Join(allSections, ","))
			os.Exit(2)
		}
		o.sections[s] = true
	}
	if o.rounds < 1 {
		fmt.Fprintln(os.Stderr, "credvault-bench: --rounds must be at least 1")
		os.Exit(2)
	}
	o.concurrency = ints(conc)
	o.scales = ints(scales)
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "credvault-bench:", err)
		os.Exit(1)
	}
}

// check is one target of the performance issue, as this run measured it.
type check struct {
	target, measured string
	ok               bool
}

// checks collects the targets the sections measured, printed at the end.
var checks []check

func addCheck(ok bool, target, measuredFormat string, args ...any) {
	checks = append(checks, check{target: target, measured: fmt.Sprintf(measuredFormat, args...), ok: ok})
}

func printChecks() {
	if len(checks) == 0 {
		return
	}
	fmt.Println("## Targets")
	fmt.Println("| target | measured | holds |")
	fmt.Println("| --- | --- | --- |")
	for _, c := range checks {
		holds := "no"
		if c.ok {
			holds = "yes"
		}
		fmt.Printf("| %s | %s | %s |\n", c.target, c.measured, holds)
	}
	fmt.Println()
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func run(o options) error {
	fmt.Printf("# credvault-bench\ncommand: %s\nmachine: %s/%s, %d CPUs, %s\ndate: %s\n\n",
		strings.Join(os.Args, " "), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel(), time.Now().UTC().Format(time.RFC3339))
	dir, err := os.MkdirTemp("", "credvault-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	parts := map[string]func(options, string) error{"throughput": throughput, "kms": kmsCalls, "writes": writes, "storm": storm, "scale": scale}
	for _, name := range allSections {
		if !o.sections[name] || (name == "scale" && len(o.scales) == 0) {
			continue
		}
		if err := parts[name](o, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	printChecks()
	return nil
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			_, v, _ := strings.Cut(l, ":")
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// ---- the daemon ----

type daemon struct {
	cmd      *exec.Cmd
	grpcAddr string
	httpAddr string
	dataDir  string
	admin    string
	started  time.Duration
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startDaemon(bin, dataDir string, env []string, flags ...string) (*daemon, error) {
	d := &daemon{grpcAddr: freeAddr(), httpAddr: freeAddr(), dataDir: dataDir}
	args := append([]string{"serve", "--data-dir", dataDir, "--grpc-addr", d.grpcAddr, "--http-addr", d.httpAddr}, flags...)
	d.cmd = exec.Command(bin, args...)
	d.cmd.Env = append(os.Environ(), env...)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"msg":"credvaultd serving"`) {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(5 * time.Minute):
		d.cmd.Process.Kill()
		return nil, fmt.Errorf("credvaultd did not start")
	}
	d.started = time.Since(start)
	b, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		return nil, err
	}
	d.admin = strings.TrimSpace(string(b))
	return d, nil
}

func (d *daemon) stop() {
	d.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
	}
}

// cpu is the daemon's user+system CPU time so far.
func (d *daemon) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// rss is the daemon's resident memory.
func (d *daemon) rss() string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "?"
}

func (d *daemon) dial(n int) ([]*grpc.ClientConn, error) {
	var conns []*grpc.ClientConn
	for range n {
		c, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// setup creates the benchmark's credentials and resolver; it returns the
// resolver's token.
func setup(conn *grpc.ClientConn, admin string, extra ...*credvaultv1.CreateCredentialRequest) (string, error) {
	ctx := as(admin)
	r, err := credvaultv1.NewCallerServiceClient(conn).CreateCaller(ctx, &credvaultv1.CreateCallerRequest{CallerId: "bench",
		Caller: &credvaultv1.Caller{Roles: []credvaultv1.Role{credvaultv1.Role_ROLE_RESOLVER}}})
	if err != nil {
		return "", err
	}
	creds := credvaultv1.NewCredentialServiceClient(conn)
	reqs := append([]*credvaultv1.CreateCredentialRequest{
		{CredentialId: "apikey", Credential: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY, AllowedCallers: []string{"callers/bench"},
			Placement: []*credvaultv1.ParameterTemplate{{Location: credvaultv1.Location_LOCATION_QUERY, Name: "appid", ValueTemplate: "{api_key}"}}},
			Secret: &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_ApiKey{ApiKey: &credvaultv1.ApiKeySecret{Key: "k-bench-0123456789"}}}},
		{CredentialId: "oauth", Credential: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_OAUTH2, AllowedCallers: []string{"callers/bench"},
			Config: &credvaultv1.Credential_Oauth2{Oauth2: &credvaultv1.OAuth2Config{GrantType: credvaultv1.GrantType_GRANT_TYPE_REFRESH_TOKEN,
				TokenUrl: "https://idp.invalid/token", ClientId: "bench"}}},
			Secret: &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_Oauth2{Oauth2: &credvaultv1.OAuth2Secret{
				AccessToken: "at-bench", RefreshToken: "rt-bench", ExpireTime: timestamppb.New(time.Now().Add(24 * time.Hour))}}}},
	}, extra...)
	for _, req := range reqs {
		if _, err := creds.CreateCredential(ctx, req); err != nil {
			return "", fmt.Errorf("creating %s: %w", req.CredentialId, err)
		}
	}
	return r.GetToken(), nil
}

// ---- load ----

type result struct {
	name        string
	requests    int
	errors      int
	elapsed     time.Duration
	p50, p99    time.Duration
	cpuPerReq   time.Duration
	concurrency int
	// eventsPerCommit is the audit events per group commit during the run,
	// commitTime the mean time of those commits.
	eventsPerCommit float64
	commitTime      time.Duration
	// allocPerReq is the daemon's heap allocation per request (bytes),
	// gcPerSec its garbage collections per second: what drives its GC
	// cost, and how often idle goroutine stacks are shrunk (and regrown).
	allocPerReq float64
	gcPerSec    float64
}

func (r result) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// load runs call from c workers over conns for d and measures it.
func load(name string, d *daemon, conns []*grpc.ClientConn, c int, dur time.Duration, call func(ctx context.Context, conn *grpc.ClientConn) error) result {
	var wg sync.WaitGroup
	lat := make([][]time.Duration, c)
	var errs atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	counters := []string{"credvault_audit_events_total", "credvault_audit_group_commits_total", "credvault_audit_group_commit_seconds_total",
		"go_memstats_alloc_bytes_total", "go_gc_duration_seconds_count"}
	before := d.metrics(counters...)
	cpu0 := d.cpu()
	start := time.Now()
	for w := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := conns[w%len(conns)]
			for ctx.Err() == nil {
				t0 := time.Now()
				if err := call(context.Background(), conn); err != nil {
					errs.Add(1)
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := d.cpu() - cpu0
	after := d.metrics(counters...)
	var perCommit float64
	var commitTime time.Duration
	if commits := after["credvault_audit_group_commits_total"] - before["credvault_audit_group_commits_total"]; commits > 0 {
		perCommit = (after["credvault_audit_events_total"] - before["credvault_audit_events_total"]) / commits
		seconds := after["credvault_audit_group_commit_seconds_total"] - before["credvault_audit_group_commit_seconds_total"]
		commitTime = time.Duration(seconds / commits * float64(time.Second))
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := result{name: name, requests: len(all), errors: int(errs.Load()), elapsed: elapsed, concurrency: c, eventsPerCommit: perCommit, commitTime: commitTime,
		gcPerSec: (after["go_gc_duration_seconds_count"] - before["go_gc_duration_seconds_count"]) / elapsed.Seconds()}
	if len(all) > 0 {
		r.p50, r.p99 = all[len(all)/2], all[len(all)*99/100]
		r.cpuPerReq = cpu / time.Duration(len(all))
		r.allocPerReq = (after["go_memstats_alloc_bytes_total"] - before["go_memstats_alloc_bytes_total"]) / float64(len(all))
	}
	return r
}

// metrics reads unlabelled counters from one scrape of the daemon's
// /metrics (missing ones read 0).
func (d *daemon) metrics(names ...string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + d.httpAddr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if ok && slices.Contains(names, name) {
			out[name], _ = strconv.ParseFloat(v, 64)
		}
	}
	return out
}

// profiled runs f while the daemon (started with pprofFlags) records its
// CPU profile of the next dur into path; with path "" it only runs f.
func (d *daemon) profiled(path string, dur time.Duration, f func()) error {
	if path == "" {
		f()
		return nil
	}
	done := make(chan error, 1)
	// net/http/pprof reads seconds=0 as its default of 30 s.
	seconds := max(1, int(dur.Round(time.Second).Seconds()))
	go func() { done <- d.fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), path) }()
	f()
	if err := <-done; err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	return nil
}

// pprofFlags are the daemon's flags for a run that profiles it (on).
func pprofFlags(on bool) []string {
	if on {
		return []string{"--pprof"}
	}
	return nil
}

// fetch saves what the daemon's HTTP side serves at urlPath into path.
func (d *daemon) fetch(urlPath, path string) error {
	resp, err := http.Get("http://" + d.httpAddr + urlPath)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func throughput(o options, dir string) error {
	d, err := startDaemon(o.daemon, dir, nil, pprofFlags(o.cpuProfile != "")...)
	if err != nil {
		return err
	}
	defer d.stop()
	conns, err := d.dial(o.conns)
	if err != nil {
		return err
	}
	token, err := setup(conns[0], d.admin)
	if err != nil {
		return err
	}
	ctx := as(token)
	md, _ := metadata.FromOutgoingContext(ctx)
	health := func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	resolve := func(name, target string) func(context.Context, *grpc.ClientConn) error {
		req := &credvaultv1.ResolveCredentialRequest{Name: name, TargetUrl: target}
		return func(ctx context.Context, c *grpc.ClientConn) error {
			_, err := credvaultv1.NewResolverServiceClient(c).ResolveCredential(metadata.NewOutgoingContext(ctx, md), req)
			return err
		}
	}
	// Warm up: connections, caches.
	load("warmup", d, conns, 8, time.Second, resolve("credentials/apikey", ""))
	fmt.Println("## 1. Resolve vs the gRPC health Check baseline (audit log on, default logging)")
	fmt.Printf("%d connections, %v per run, %d rounds of (health, api_key, oauth2) per concurrency; each figure is the median over\n", o.conns, o.duration, o.rounds)
	fmt.Println("the rounds, and each ratio compares medians. CPU = the server's utime+stime over a run / its requests.")
	fmt.Println()
	fmt.Println("| run | concurrency | req/s | p50 | p99 | server CPU/req | server heap alloc/req, GCs/s | errors | audit events/commit (mean commit) | ratio to baseline (req/s, p99, CPU) |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, c := range o.concurrency {
		var base, apiKey, oauth []result
		for round := range o.rounds {
			// The profiles, when asked for: CPU of the health and api_key
			// runs, allocations before and after the latter (collected
			// first, so they are current).
			profiling := o.cpuProfile != "" && c == slices.Max(o.concurrency) && round == 0
			prof := func(suffix string) string {
				if !profiling {
					return ""
				}
				return o.cpuProfile + suffix
			}
			allocs := func(suffix string) error {
				if !profiling {
					return nil
				}
				if err := d.fetch("/debug/pprof/heap?gc=1", o.cpuProfile+suffix); err != nil {
					return fmt.Errorf("allocs profile: %w", err)
				}
				return nil
			}
			if err := d.profiled(prof("-health.prof"), o.duration, func() {
				base = append(base, load("health Check", d, conns, c, o.duration, health))
			}); err != nil {
				return err
			}
			if err := allocs("-allocs-before.prof"); err != nil {
				return err
			}
			if err := d.profiled(prof("-resolve.prof"), o.duration, func() {
				apiKey = append(apiKey, load("Resolve api_key", d, conns, c, o.duration, resolve("credentials/apikey", "")))
			}); err != nil {
				return err
			}
			if err := allocs("-allocs.prof"); err != nil {
				return err
			}
			oauth = append(oauth, load("Resolve oauth2 (cached token)", d, conns, c, o.duration, resolve("credentials/oauth", "")))
		}
		b := median(base)
		printResult(b, nil)
		for _, r := range []result{median(apiKey), median(oauth)} {
			printResult(r, &b)
			if c != 64 {
				continue
			}
			rps, p99, cpu := r.rps()/b.rps(), float64(r.p99)/float64(b.p99), float64(r.cpuPerReq)/float64(max(b.cpuPerReq, 1))
			us := float64(r.cpuPerReq) / float64(time.Microsecond)
			addCheck(rps >= 0.8, r.name+": throughput ≥ 0.8 × health Check at c=64", "%.2f×", rps)
			addCheck(p99 <= 2, r.name+": p99 ≤ 2 × health Check's at c=64", "%.2f× (%v vs %v)", p99, r.p99.Round(time.Microsecond), b.p99.Round(time.Microsecond))
			addCheck(us <= 60, r.name+": server CPU ≤ 60 µs per resolve at c=64", "%.1f µs", us)
			addCheck(cpu <= 1.5, r.name+": server CPU ≤ 1.5 × health Check's at c=64", "%.2f× (%.1f vs %.1f µs)", cpu, us, float64(b.cpuPerReq)/float64(time.Microsecond))
		}
	}
	fmt.Println()
	return nil
}

// median is a result whose every figure is the median of that figure over
// rs (rs are runs of one kind).
func median(rs []result) result {
	mid := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	m := rs[0]
	m.elapsed = time.Second
	m.requests = int(mid(func(r result) float64 { return r.rps() }))
	m.errors = 0 // summed, not a median: a failing round must show
	for _, r := range rs {
		m.errors += r.errors
	}
	m.p50 = time.Duration(mid(func(r result) float64 { return float64(r.p50) }))
	m.p99 = time.Duration(mid(func(r result) float64 { return float64(r.p99) }))
	m.cpuPerReq = time.Duration(mid(func(r result) float64 { return float64(r.cpuPerReq) }))
	m.eventsPerCommit = mid(func(r result) float64 { return r.eventsPerCommit })
	m.commitTime = time.Duration(mid(func(r result) float64 { return float64(r.commitTime) }))
	m.allocPerReq = mid(func(r result) float64 { return r.allocPerReq })
	m.gcPerSec = mid(func(r result) float64 { return r.gcPerSec })
	return m
}

func printResult(r result, base *result) {
	ratio := ""
	if base != nil && base.requests > 0 {
		ratio = fmt.Sprintf("%.2f×, %.2f×, %.2f×", r.rps()/base.rps(), float64(r.p99)/float64(base.p99), float64(r.cpuPerReq)/float64(max(base.cpuPerReq, 1)))
	}
	perCommit := "–"
	if r.eventsPerCommit > 0 {
		perCommit = fmt.Sprintf("%.1f (%v)", r.eventsPerCommit, r.commitTime.Round(time.Microsecond))
	}
	fmt.Printf("| %s | %d | %.0f | %s | %s | %.1f µs | %.0f B, %.0f/s | %d | %s | %s |\n", r.name, r.concurrency, r.rps(), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond),
		float64(r.cpuPerReq)/float64(time.Microsecond), r.allocPerReq, r.gcPerSec, r.errors, perCommit, ratio)
}

// ---- KMS calls in steady state ----

func kmsCalls(o options, dir string) error {
	os.MkdirAll(dir, 0o700)
	fake := exec.Command(o.kmsfake, "--state", filepath.Join(dir, "kms.json"))
	out, _ := fake.StdoutPipe()
	if err := fake.Start(); err != nil {
		return err
	}
	defer func() { fake.Process.Kill(); fake.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 3 {
		return fmt.Errorf("kmsfake: %q %v", line, err)
	}
	env := []string{"AWS_ENDPOINT_URL_KMS=" + f[1], "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=x",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true"}
	d, err := startDaemon(o.daemon, filepath.Join(dir, "data"), env, "--key-provider", "awskms", "--kms-key-id", "alias/credvault")
	if err != nil {
		return err
	}
	conns, err := d.dial(1)
	if err != nil {
		d.stop()
		return err
	}
	token, err := setup(conns[0], d.admin)
	if err != nil {
		d.stop()
		return err
	}
	stats := func() map[string]int64 {
		resp, err := http.Get(f[1] + "/_fake/stats")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var m map[string]int64
		json.NewDecoder(resp.Body).Decode(&m)
		return m
	}
	client := credvaultv1.NewResolverServiceClient(conns[0])
	ctx := as(token)
	before := stats()
	for i := range o.kmsResolves {
		name := "credentials/apikey"
		if i%2 == 1 {
			name = "credentials/oauth"
		}
		if _, err := client.ResolveCredential(ctx, &credvaultv1.ResolveCredentialRequest{Name: name}); err != nil {
			d.stop()
			return err
		}
	}
	after := stats()
	d.stop()
	// Restart: a cold cache costs one Decrypt per credential, then none.
	d2, err := startDaemon(o.daemon, filepath.Join(dir, "data"), env, "--key-provider", "awskms", "--kms-key-id", "alias/credvault")
	if err != nil {
		return err
	}
	defer d2.stop()
	conns2, _ := d2.dial(1)
	client2 := credvaultv1.NewResolverServiceClient(conns2[0])
	cold := stats()
	for range o.kmsResolves {
		client2.ResolveCredential(ctx, &credvaultv1.ResolveCredentialRequest{Name: "credentials/apikey"})
	}
	coldAfter := stats()
	fmt.Println("## 2. KMS calls in steady state (awskms provider against the KMS fake process)")
	fmt.Printf("- %d resolves after the credentials were written: %d KMS calls (Decrypt %d, GenerateDataKey %d)\n",
		o.kmsResolves, sum(after)-sum(before), after["Decrypt"]-before["Decrypt"], after["GenerateDataKey"]-before["GenerateDataKey"])
	steady := float64(sum(after)-sum(before)) * 10000 / float64(o.kmsResolves)
	addCheck(steady == 0, "0 KMS calls per 10,000 steady-state resolves", "%.0f", steady)
	fmt.Printf("- %d resolves after a restart (cold cache): %d KMS calls (Decrypt %d: one per credential, then cached)\n\n",
		o.kmsResolves, sum(coldAfter)-sum(cold), coldAfter["Decrypt"]-cold["Decrypt"])
	return nil
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// ---- writes ----

func writes(o options, dir string) error {
	d, err := startDaemon(o.daemon, dir, nil)
	if err != nil {
		return err
	}
	defer d.stop()
	conns, err := d.dial(o.conns)
	if err != nil {
		return err
	}
	ctx := as(d.admin)
	var n atomic.Int64
	create := func(ctx2 context.Context, c *grpc.ClientConn) error {
		i := n.Add(1)
		_, err := credvaultv1.NewCredentialServiceClient(c).CreateCredential(ctx, &credvaultv1.CreateCredentialRequest{
			CredentialId: fmt.Sprintf("w%07d", i), Credential: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_API_KEY},
			Secret: &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_ApiKey{ApiKey: &credvaultv1.ApiKeySecret{Key: "k"}}}})
		return err
	}
	fmt.Println("## 4. CreateCredential throughput (local key provider; each acknowledged write fsynced)")
	fmt.Println("| run | concurrency | creates/s | p50 | p99 | server CPU/req |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: |")
	for _, c := range []int{1, 16} {
		r := load("CreateCredential", d, conns, c, o.duration, create)
		fmt.Printf("| %s | %d | %.0f | %s | %s | %.1f µs |\n", r.name, c, r.rps(), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), float64(r.cpuPerReq)/1e3)
	}
	fmt.Println()
	return nil
}

// ---- refresh storm ----

func storm(o options, dir string) error {
	var requests atomic.Int64
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		time.Sleep(20 * time.Millisecond) // a provider's latency
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"at-%d","refresh_token":"rt-%d","expires_in":3600,"token_type":"Bearer"}`, requests.Load(), requests.Load())
	}))
	defer idp.Close()
	d, err := startDaemon(o.daemon, dir, nil)
	if err != nil {
		return err
	}
	defer d.stop()
	conns, err := d.dial(o.conns)
	if err != nil {
		return err
	}
	token, err := setup(conns[0], d.admin, &credvaultv1.CreateCredentialRequest{CredentialId: "expired",
		Credential: &credvaultv1.Credential{Type: credvaultv1.CredentialType_CREDENTIAL_TYPE_OAUTH2, AllowedCallers: []string{"callers/bench"},
			Config: &credvaultv1.Credential_Oauth2{Oauth2: &credvaultv1.OAuth2Config{GrantType: credvaultv1.GrantType_GRANT_TYPE_REFRESH_TOKEN,
				TokenUrl: idp.URL + "/token", ClientId: "bench"}}},
		Secret: &credvaultv1.CredentialSecret{Kind: &credvaultv1.CredentialSecret_Oauth2{Oauth2: &credvaultv1.OAuth2Secret{
			AccessToken: "old", RefreshToken: "rt-0", ExpireTime: timestamppb.New(time.Now().Add(-time.Minute))}}}})
	if err != nil {
		return err
	}
	ctx := as(token)
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	for i := range o.storm {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := credvaultv1.NewResolverServiceClient(conns[i%len(conns)]).ResolveCredential(ctx, &credvaultv1.ResolveCredentialRequest{Name: "credentials/expired"})
			if err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Println("## 5. Refresh storm")
	fmt.Printf("- %d concurrent resolves of one expired OAuth 2.0 credential: %d token request(s), %d failures, all answered in %v (provider latency 20ms)\n\n",
		o.storm, requests.Load(), failed.Load(), time.Since(start).Round(time.Millisecond))
	addCheck(requests.Load() == 1 && failed.Load() == 0, fmt.Sprintf("exactly 1 token request per refresh storm (%d resolves)", o.storm),
		"%d request(s), %d failures", requests.Load(), failed.Load())
	return nil
}

// ---- scale ----

func scale(o options, dir string) error {
	fmt.Println("## 3. Scale: resolve latency and file size by stored credentials")
	fmt.Println("Two access patterns: uniform over every stored credential (no cache can help at 1M), and a hot set of")
	fmt.Println("the same 1,000 credentials (what a fleet of callers mostly does) in a database of that size.")
	fmt.Printf("16 workers, %v per run, %d rounds of (uniform, hot set) per size; figures are medians over the rounds.\n", o.duration, o.rounds)
	fmt.Println()
	fmt.Println("| credentials | seed time | file size | daemon start | RSS after load | uniform p50 | uniform p99 | uniform req/s | hot-set p50 | hot-set p99 | hot-set req/s |")
	fmt.Println("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	uniformP50 := map[int]time.Duration{}
	hotP50 := map[int]time.Duration{}
	for _, n := range o.scales {
		data := filepath.Join(dir, strconv.Itoa(n))
		os.MkdirAll(data, 0o700)
		t0 := time.Now()
		if err := seed(data, n); err != nil {
			return err
		}
		seedTime := time.Since(t0)
		st, _ := os.Stat(filepath.Join(data, boltstore.FileName))
		profile := o.cpuProfile != "" && n == slices.Max(o.scales)
		d, err := startDaemon(o.daemon, data, nil, pprofFlags(profile)...)
		if err != nil {
			return err
		}
		conns, _ := d.dial(o.conns)
		token, err := setup(conns[0], d.admin)
		if err != nil {
			d.stop()
			return err
		}
		md := metadata.Pairs("authorization", "Bearer "+token)
		// One position per pattern across rounds: a later round goes on to
		// credentials the earlier ones did not reach, rather than repeating
		// them from warm caches.
		var next [2]atomic.Int64
		run := func(space int64) result {
			i := &next[0]
			if space < int64(n) {
				i = &next[1]
			}
			return load("resolve", d, conns, 16, o.duration, func(ctx context.Context, c *grpc.ClientConn) error {
				k := i.Add(7919) % space // a stride that visits the whole space
				_, err := credvaultv1.NewResolverServiceClient(c).ResolveCredential(metadata.NewOutgoingContext(ctx, md),
					&credvaultv1.ResolveCredentialRequest{Name: fmt.Sprintf("credentials/s%08d", k)})
				return err
			})
		}
		// Rounds of (uniform, hot set), medians reported: one 5 s run on
		// this machine moves by 10-15%, and the 1M / 1k ratio divides two.
		var us, hs []result
		for round := range o.rounds {
			path := ""
			if profile && round == 0 {
				path = o.cpuProfile + "-uniform.prof"
			}
			if err := d.profiled(path, o.duration, func() { us = append(us, run(int64(n))) }); err != nil {
				d.stop()
				return err
			}
			hs = append(hs, run(int64(min(n, 1000))))
		}
		u, h := median(us), median(hs)
		uniformP50[n], hotP50[n] = u.p50, h.p50
		fmt.Printf("| %d | %v | %.1f MiB | %v | %s | %s | %s | %.0f | %s | %s | %.0f |\n", n, seedTime.Round(time.Millisecond), float64(st.Size())/(1<<20),
			d.started.Round(time.Millisecond), d.rss(), u.p50.Round(time.Microsecond), u.p99.Round(time.Microsecond), u.rps(),
			h.p50.Round(time.Microsecond), h.p99.Round(time.Microsecond), h.rps())
		if u.errors+h.errors > 0 {
			fmt.Printf("  (%d errors)\n", u.errors+h.errors)
		}
		d.stop()
		os.RemoveAll(data)
	}
	if small, large := slices.Min(o.scales), slices.Max(o.scales); small < large {
		for _, p := range []struct {
			name string
			p50  map[int]time.Duration
		}{{"uniform access", uniformP50}, {"hot set of 1,000", hotP50}} {
			r := float64(p.p50[large]) / float64(p.p50[small])
			addCheck(r <= 1.5, fmt.Sprintf("resolve p50 at %d credentials ≤ 1.5 × at %d (%s)", large, small, p.name),
				"%.2f× (%v vs %v)", r, p.p50[large].Round(time.Microsecond), p.p50[small].Round(time.Microsecond))
		}
	}
	fmt.Println()
	return nil
}

// seed writes n API-key credentials named credentials/sNNNNNNNN into a
// stopped vault's data dir, in batches of one transaction each.
func seed(dataDir string, n int) error {
	ctx := context.Background()
	keys, err := localkey.Open(filepath.Join(dataDir, "master.key"))
	if err != nil {
		return err
	}
	store, err := boltstore.Open(filepath.Join(dataDir, boltstore.FileName), time.Second)
	if err != nil {
		return err
	}
	defer store.Close()
	v, err := vault.New(ctx, vault.Config{Store: store, Keys: keys, Logger: nil, DataKeyCacheSize: -1})
	if err != nil {
		return err
	}
	const batch = 20000
	for start := 0; start < n; start += batch {
		var cs []*vault.Credential
		var ss []authtypes.Secret
		for i := start; i < min(n, start+batch); i++ {
			cs = append(cs, &vault.Credential{Name: fmt.Sprintf("credentials/s%08d", i), Type: authtypes.TypeAPIKey, AllowedCallers: []string{"callers/bench"}})
			ss = append(ss, authtypes.Secret{APIKey: &authtypes.APIKeySecret{Key: fmt.Sprintf("k-%d", i)}})
		}
		if err := v.BulkCreate(ctx, cs, ss); err != nil {
			return err
		}
	}
	return nil
}
