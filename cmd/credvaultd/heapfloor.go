package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
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
// A heap floor keeps the collector's heap goal at or above floor bytes:
// after each collection it sets GOGC so that the goal is the larger of the
// floor and twice the live heap (Go's default). A daemon with a large live
// heap (a million credentials' caches) paces exactly as Go's default; a
// small one spends up to floor bytes of memory to collect a few times a
// second instead. An operator's GOGC setting wins: the floor is then off.

// keepHeapGoalAbove starts the heap floor and returns a function that stops
// it. It does nothing (and returns a no-op) when floor is 0 or GOGC is set.
func keepHeapGoalAbove(floor uint64) (stop func()) {
	if floor == 0 || os.Getenv("GOGC") != "" {
		return func() {}
	}
	return startHeapFloor(floor).stop
}

type heapFloor struct {
	floor   uint64
	percent int // the GOGC set last; only the cleanup goroutine touches it after start
	sample  []metrics.Sample
	stopped atomic.Bool
	checks  atomic.Int64 // adjustments run (one per collection)
}

func startHeapFloor(floor uint64) *heapFloor {
	f := &heapFloor{floor: floor, percent: 100, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	f.adjust()
	f.arm()
	return f
}

func (f *heapFloor) stop() {
	f.stopped.Store(true)
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
		if f.stopped.Load() {
			return
		}
		f.adjust()
		f.arm()
	}, f)
}

// adjust sets GOGC for the live heap just measured.
func (f *heapFloor) adjust() {
	f.checks.Add(1)
	metrics.Read(f.sample)
	if f.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	p := gcPercentFor(f.floor, f.sample[0].Value.Uint64())
	// Small changes are not worth the pacer's recomputation.
	if p != f.percent && (p > f.percent*11/10 || p < f.percent*9/10 || p == 100) {
		debug.SetGCPercent(p)
		f.percent = p
	}
}

// goHeapMinimum is the runtime's least heap goal at GOGC=100; it scales
// with GOGC (at GOGC=1600 it is 64 MiB).
const goHeapMinimum = 4 << 20

// gcPercentFor is the GOGC whose heap goal for a live heap of live bytes is
// floor, or Go's default 100 when that is larger. The goal is the larger of
// live*(1+GOGC/100) and goHeapMinimum*GOGC/100, so the second bounds GOGC
// for a small live heap (and before the first collection, when live is 0).
func gcPercentFor(floor, live uint64) int {
	if live*2 >= floor {
		return 100
	}
	p := floor * 100 / goHeapMinimum
	if live > 0 {
		p = min(p, (floor-live)*100/live)
	}
	return int(max(p, 100))
}
