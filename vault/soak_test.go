package vault_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/credvault/credvault/authtypes"
	"github.com/credvault/credvault/vault"
	"github.com/credvault/credvault/vault/auditlog"
)

// TestSoak runs mixed concurrent load — create, rotate, resolve, delete,
// OAuth refreshes against a rotating provider, audit events — for
// SOAK_DURATION (default 3s here; `make soak` runs a minute), then checks
// that what the store holds is exactly what was acknowledged, the audit
// chain verifies, no goroutine leaked and the heap did not keep growing.
func TestSoak(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { // registered first, so it runs after every other cleanup
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		goleak.VerifyNone(t, ignore)
	})
	dur := 3 * time.Second
	if s := os.Getenv("SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		dur = d
	}
	p := newFakeProvider(t)
	p.set(func(p *fakeProvider) { p.expiresIn = 1 })
	e := newEnv(t, vault.Config{OAuth: fastExchanger(), Clock: nil})
	ctx := context.Background()
	oc := oauthCred("credentials/oauth", p, authtypes.GrantRefreshToken)
	if _, err := e.v.CreateCredential(ctx, oc, authtypes.Secret{OAuth2: &authtypes.OAuth2Secret{RefreshToken: "rt-0"}}); err != nil {
		t.Fatal(err)
	}
	type want struct {
		key     string
		deleted bool
	}
	var mu sync.Mutex
	acked := map[string]want{}
	var ops, resolves, refreshFailures atomic.Int64
	var heapEarly uint64
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // time passes: tokens (1 s lifetime) expire and are refreshed
		defer wg.Done()
		for time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			e.clock.Advance(time.Second)
		}
	}()
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; time.Now().Before(deadline); i++ {
				name := fmt.Sprintf("credentials/w%d-%03d", w, rng.IntN(50))
				key := fmt.Sprintf("k%d-%d", w, i)
				mu.Lock()
				cur, exists := acked[name]
				mu.Unlock()
				var err error
				switch op := rng.IntN(10); {
				case !exists || cur.deleted:
					c, s := apiKey(name, key)
					_, err = e.v.CreateCredential(ctx, c, s)
					cur = want{key: key}
				case op < 5:
					var r *vault.Resolution
					r, err = e.v.Resolve(ctx, vault.ResolveRequest{Name: name, Caller: e.app})
					if err == nil && r.Parameters[0].Value != cur.key {
						t.Errorf("%s resolved to %q, want %q", name, r.Parameters[0].Value, cur.key)
					}
					resolves.Add(1)
					if err == nil {
						err = e.v.RecordEvent(ctx, &auditlog.Event{Caller: "callers/app", Method: "resolve", Resource: name, Outcome: auditlog.OutcomeSuccess})
					}
				case op < 7:
					_, err = e.v.RotateCredentialSecret(ctx, name, "", authtypes.Secret{APIKey: &authtypes.APIKeySecret{Key: key}})
					cur = want{key: key}
				case op < 8:
					err = e.v.DeleteCredential(ctx, name, "")
					cur = want{deleted: true}
				default:
					if _, rerr := e.v.Resolve(ctx, vault.ResolveRequest{Name: oc.Name, Caller: e.app}); rerr != nil {
						refreshFailures.Add(1)
					}
				}
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				mu.Lock()
				acked[name] = cur
				mu.Unlock()
				ops.Add(1)
				if w == 0 && i == 200 {
					heapEarly = heap()
				}
			}
		}()
	}
	wg.Wait()
	for name, w := range acked {
		c, err := e.v.GetCredential(ctx, name)
		switch {
		case w.deleted && err == nil:
			t.Errorf("%s was deleted but is stored", name)
		case !w.deleted && err != nil:
			t.Errorf("%s was acknowledged but is gone: %v", name, err)
		}
		_ = c
	}
	if ok, checked, bad, err := e.v.VerifyAuditLog(ctx); !ok || err != nil {
		t.Errorf("audit chain: ok %v, %d checked, first bad %d, %v", ok, checked, bad, err)
	}
	if refreshFailures.Load() > 0 {
		t.Errorf("%d OAuth resolves failed against a healthy rotating provider", refreshFailures.Load())
	}
	heapLate := heap()
	if heapEarly > 0 && heapLate > 4*heapEarly+64<<20 {
		t.Errorf("heap grew from %d to %d bytes", heapEarly, heapLate)
	}
	t.Logf("soak %v: %d operations (%d resolves), %d token requests, %d credentials checked, 0 lost; heap %d → %d KiB",
		dur, ops.Load(), resolves.Load(), p.requests.Load(), len(acked), heapEarly>>10, heapLate>>10)
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
