package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name               string
		floor, live, roots uint64
		want               int
	}{
		{"before the first collection", 64 * mib, 0, 0, 1600},
		{"live heap below the runtime's minimum", 64 * mib, 1 * mib, 0, 1600},
		{"live heap of 8 MiB", 64 * mib, 8 * mib, 0, 700},
		{"live heap of 8 MiB and 8 MiB of stacks and globals", 64 * mib, 8 * mib, 8 * mib, 350},
		{"live heap of half the floor", 64 * mib, 32 * mib, 0, 100},
		{"stacks and globals take the rest of the floor", 64 * mib, 16 * mib, 32 * mib, 100},
		{"live heap above the floor", 64 * mib, 1024 * mib, 0, 100},
		{"floor below the runtime's minimum", 2 * mib, 0, 0, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := gcPercentFor(tc.floor, tc.live, tc.roots); got != tc.want {
				t.Errorf("gcPercentFor(%d MiB, %d MiB, %d MiB) = %d, want %d", tc.floor/mib, tc.live/mib, tc.roots/mib, got, tc.want)
			}
		})
	}
}

// TestHeapFloorFollowsCollections checks the floor is applied at start and
// kept after collections, and that stop restores Go's default.
func TestHeapFloorFollowsCollections(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set: the floor is off by design")
	}
	f := startHeapFloor(256 << 20)
	if got := gogc(); got <= 100 {
		t.Errorf("GOGC with a 256 MiB floor at start = %d, want > 100", got)
	}
	for range 3 {
		runtime.GC()
	}
	// Cleanups run on their own goroutine after the cycle; give it time.
	for i := 0; i < 1000 && f.checks.Load() < 3; i++ {
		time.Sleep(time.Millisecond)
	}
	if got := f.checks.Load(); got < 3 {
		t.Errorf("%d adjustments after 3 collections, want one at start and one per collection", got)
	}
	if got := gogc(); got <= 100 {
		t.Errorf("GOGC with a 256 MiB floor and a small live heap = %d, want > 100", got)
	}
	f.stop()
	if got := gogc(); got != 100 {
		t.Errorf("GOGC after stop = %d, want 100", got)
	}
}

func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// TestHeapFloorStaysUnderMemoryLimit checks that under GOMEMLIMIT the floor
// is at most half the limit, so the limit does not become the pacing.
func TestHeapFloorStaysUnderMemoryLimit(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set: the floor is off by design")
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(32 << 20))
	stop := keepHeapGoalAbove(1 << 30)
	defer stop()
	// A 16 MiB floor allows GOGC 400 at most (the runtime's 4 MiB minimum
	// scales with it).
	if got := gogc(); got > 400 {
		t.Errorf("GOGC under a 32 MiB memory limit = %d, want at most 400 (a 16 MiB floor)", got)
	}
}

// TestHeapFloorStops checks that a stopped floor adjusts nothing more.
func TestHeapFloorStops(t *testing.T) {
	f := startHeapFloor(256 << 20)
	f.stop()
	n := f.checks.Load()
	for range 3 {
		runtime.GC()
	}
	time.Sleep(10 * time.Millisecond)
	if got := f.checks.Load(); got != n {
		t.Errorf("%d adjustments after stop, want 0", got-n)
	}
	if got := gogc(); got != 100 {
		t.Errorf("GOGC after stop = %d, want 100", got)
	}
}
