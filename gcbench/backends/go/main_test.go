package main

// Unit tests of the wall-to-monotonic conversion with injected clock samples (no real clock, no GC):
// run by tests/test_backend_go.py with `go test`.

import "testing"

const (
	sec   = int64(1_000_000_000)
	ms    = int64(1_000_000)
	wall0 = int64(1_700_000_000) * sec // a wall clock far from the monotonic one, as on a real machine
)

// sample: a pair read at monotonic time mono while the wall clock ran offset ahead of it.
func sample(mono, offset int64, numGC uint32) clockSample {
	return clockSample{monoNs: mono, wallNs: mono + offset, numGC: numGC}
}

// convert runs the server's conversion over cycles whose true monotonic ends are endsMono, with the wall
// clock offset given by offsetAt(t) at the moment each cycle ended, and the clock samples fed in order.
func convert(t *testing.T, samples []clockSample, endsMono []int64, offsetAt func(int64) int64) []int64 {
	t.Helper()
	s := &server{}
	var pauseNs, pauseEnd [pauseBufferLen]uint64
	for i, end := range endsMono {
		pauseEnd[i] = uint64(end + offsetAt(end))
		pauseNs[i] = 1000
	}
	for _, c := range samples {
		s.clocks.add(c)
	}
	s.convertPauses(uint32(len(endsMono)), &pauseNs, &pauseEnd)
	got := make([]int64, len(s.events))
	for i, e := range s.events {
		got[i] = e.endNs
	}
	return got
}

func assertEnds(t *testing.T, got, want []int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("cycle %d: end %d ns, want %d (off by %d ns)", i+1, got[i], want[i], got[i]-want[i])
		}
	}
}

// A wall-clock step between two pauses and the drain must not move the earlier pause: the old code
// converted every cycle with one pair read at drain time, after the step, and moved cycle 1 by 5 s.
func TestStepAfterAPauseDoesNotMoveIt(t *testing.T) {
	stepAt := 300 * ms
	offsetAt := func(m int64) int64 {
		if m >= stepAt {
			return wall0 + 5*sec
		}
		return wall0
	}
	ends := []int64{150 * ms, 450 * ms} // cycle 1 before the step, cycle 2 after
	samples := []clockSample{
		sample(100*ms, offsetAt(100*ms), 0),
		sample(200*ms, offsetAt(200*ms), 1),
		sample(400*ms, offsetAt(400*ms), 1),
		sample(500*ms, offsetAt(500*ms), 2),
		sample(900*ms, offsetAt(900*ms), 2), // the drain, long after
	}
	assertEnds(t, convert(t, samples, ends, offsetAt), ends)
}

// A backward step, landing inside the bracket of a cycle: the conversion that lands inside wins.
func TestBackwardStepInsideTheBracket(t *testing.T) {
	stepAt := 250 * ms
	offsetAt := func(m int64) int64 {
		if m >= stepAt {
			return wall0 - 2*sec
		}
		return wall0
	}
	for _, end := range []int64{220 * ms, 280 * ms} { // before and after the step, same bracket
		samples := []clockSample{sample(200*ms, offsetAt(200*ms), 0), sample(300*ms, offsetAt(300*ms), 1)}
		assertEnds(t, convert(t, samples, []int64{end}, offsetAt), []int64{end})
	}
}

// Steps are counted when the offset between consecutive samples changes by more than 1 ms; jitter
// and slewing below that are not steps.
func TestStepsCounted(t *testing.T) {
	var r clockRing
	offsets := []int64{wall0, wall0 + 900_000, wall0 + 900_000 - 3*ms, wall0 - 3*ms + 900_000 + 40*sec}
	for i, off := range offsets {
		r.add(sample(int64(i)*sec, off, 0))
	}
	if r.samples != 4 || r.steps != 2 || r.stepMax != 40*sec {
		t.Fatalf("samples %d steps %d max %d, want 4, 2, %d", r.samples, r.steps, r.stepMax, 40*sec)
	}
}

// A pair read while the thread was descheduled (its monotonic reads 4 ms apart) knows its offset only
// to within 2 ms: an apparent change of 2.5 ms is not a step, a real 40 s step after it still is. The
// old rule counted both (a Go run on a loaded machine reported 2 clock steps that never happened).
func TestAPairReadAcrossAPreemptionIsNotAStep(t *testing.T) {
	var r clockRing
	wide := sample(sec, wall0+2500_000, 0)
	wide.widthNs = 4 * ms
	for _, c := range []clockSample{sample(0, wall0, 0), wide, sample(2*sec, wall0+40*sec, 0)} {
		r.add(c)
	}
	if r.steps != 1 {
		t.Fatalf("steps %d, want 1 (the 40 s step only)", r.steps)
	}
}

// With no step, every cycle converts exactly, including one before the first sample (start-up) and
// one after the last response (converted at flush with the drain's own sample).
func TestNoStepExact(t *testing.T) {
	offsetAt := func(int64) int64 { return wall0 + 123_456_789 }
	ends := []int64{5 * ms, 150 * ms, 160 * ms, 990 * ms}
	samples := []clockSample{
		sample(100*ms, offsetAt(0), 1),
		sample(200*ms, offsetAt(0), 3),
		sample(300*ms, offsetAt(0), 3),
		sample(1000*ms, offsetAt(0), 4),
	}
	assertEnds(t, convert(t, samples, ends, offsetAt), ends)
}

// The ring keeps only the samples that bracket a change of the cycle count, so many responses without
// a cycle neither fill it nor lose the bracket.
func TestRingKeepsBrackets(t *testing.T) {
	var r clockRing
	for i := 0; i < 10_000; i++ {
		r.add(sample(int64(i)*ms, wall0, uint32(i/5000)))
	}
	if r.n != 3 || r.dropped != 0 {
		t.Fatalf("kept %d samples (dropped %d), want 3: the first, the last before the change, the first after", r.n, r.dropped)
	}
	from := 0
	prev, ok, next := r.bracket(1, &from)
	if !ok || prev.monoNs != 4999*ms || next.monoNs != 5000*ms {
		t.Fatalf("bracket of cycle 1: %v %v %v", prev, ok, next)
	}
	r.forget()
	if r.n != 1 || r.kept[0].monoNs != 9999*ms {
		t.Fatalf("after forget: %d kept, first at %d", r.n, r.kept[0].monoNs)
	}
}
