package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// The daemon's live heap is small (a few MiB with thousands of credentials)
// while every call allocates a few KiB, almost all of it gRPC's. With Go's
// default pacing (GOGC=100: collect when the heap doubles, or at 4 MiB) that
// is about 100 collections a second under load, and each one also shrinks
// the stacks of the idle gRPC stream workers, which the next call then
// grows again. Measured at 64 concurrent resolves on a 2-core VM
// (credvault-bench --sections throughput), collections and stack regrowth
// were about a quarter of the daemon's CPU.
//
// A heap floor keeps the collector's heap goal near floor bytes while the
// live heap is small: after each collection it sets GOGC so that the goal
// is the larger of the floor and Go's default goal. A daemon with a large
// live heap (a million credentials' caches) paces exactly as Go's default;
// a small one spends about floor bytes of memory to collect a few times a
// second instead. An operator's GOGC setting wins: the floor is then off.
// Under a memory limit (GOMEMLIMIT) the floor is at most half the limit,
// so the limit never becomes the pacing.

// maxHeapFloor bounds --gc-heap-floor (1 TiB), far above any use and far
// below what would overflow GOGC.
const maxHeapFloor = 1 << 40

// keepHeapGoalAbove starts the heap floor and returns a function that stops
// it. It does nothing (and returns a no-op) when floor is 0 or GOGC is set.
func keepHeapGoalAbove(floor uint64) (stop func()) {
	if limit := debug.SetMemoryLimit(-1); limit > 0 {
		floor = min(floor, uint64(limit)/2)
	}
	if floor == 0 || os.Getenv("GOGC") != "" {
		return func() {}
	}
	return startHeapFloor(floor).stop
}

type heapFloor struct {
	floor  uint64
	sample []metrics.Sample
	checks atomic.Int64 // adjustments run (one per collection)

	mu      sync.Mutex // orders stop against an adjustment in flight
	stopped bool
	percent int // the GOGC set last
}

// heapFloorMetrics are what the pacer's goal is made of, in this order.
var heapFloorMetrics = []string{"/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes"}

func startHeapFloor(floor uint64) *heapFloor {
	f := &heapFloor{floor: min(floor, maxHeapFloor), percent: 100}
	for _, name := range heapFloorMetrics {
		f.sample = append(f.sample, metrics.Sample{Name: name})
	}
	f.adjust()
	f.arm()
	return f
}

func (f *heapFloor) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	debug.SetGCPercent(100)
}

// gcTick is allocated to be collected: its cleanup runs once per
// collection cycle. It holds a pointer so that it is not a tiny object
// (which shares a block with others and may outlive its cycle).
type gcTick struct{ _ *byte }

// arm registers the adjustment to run after the next collection, and
// re-arms itself from there.
func (f *heapFloor) arm() {
	runtime.AddCleanup(&gcTick{}, func(f *heapFloor) {
		if f.adjust() {
			f.arm()
		}
	}, f)
}

// adjust sets GOGC for the heap just measured; it reports false once the
// floor is stopped.
func (f *heapFloor) adjust() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	f.checks.Add(1)
	metrics.Read(f.sample)
	var v [3]uint64
	for i, s := range f.sample {
		if s.Value.Kind() != metrics.KindUint64 {
			return true
		}
		v[i] = s.Value.Uint64()
	}
	p := gcPercentFor(f.floor, v[0], v[1]+v[2])
	// Small changes are not worth the pacer's recomputation.
	if p != f.percent && (p > f.percent*11/10 || p < f.percent*9/10 || p == 100) {
		debug.SetGCPercent(p)
		f.percent = p
	}
	return true
}

// goHeapMinimum is the runtime's least heap goal at GOGC=100; it scales
// with GOGC (at GOGC=1600 it is 64 MiB).
const goHeapMinimum = 4 << 20

// gcPercentFor is the GOGC whose heap goal is floor for a live heap of
// live bytes and roots (goroutine stacks and globals) of roots bytes, or
// Go's default 100 when that goal is larger. The runtime's goal is
// live + (live+roots)*GOGC/100, and at least goHeapMinimum*GOGC/100; the
// second bounds GOGC for a small heap (and before the first collection,
// when live is 0).
func gcPercentFor(floor, live, roots uint64) int {
	scanned := live + roots
	if live+scanned >= floor {
		return 100
	}
	p := floor * 100 / goHeapMinimum
	if scanned > 0 {
		p = min(p, (floor-live)*100/scanned)
	}
	return int(max(p, 100))
}
