// gcbench's built-in Go MCP tool server: standard library only, contract in ../PROTOCOL.md.
//
// Go has no per-collection callback, so GC pauses are read after the fact from the runtime's circular
// buffer of the last 256 cycles (runtime/debug.ReadGCStats, which does not stop the world).
// After every response the server reads the cheap /gc/cycles/total metric and a (wall, monotonic) clock
// pair, and drains the buffer once 128 cycles have gone by, on gcbench/flush and at exit, so no pause is lost.
//
// What the buffer holds per cycle (runtime/mgc.go, gcMarkTermination, read in go1.27.3's source):
// PauseNs[i] is the SUM of the cycle's two stop-the-world phases (sweep termination, then mark
// termination after the whole concurrent mark, 49-117 ms later at 3M live objects on the 2-core test
// box), and PauseEnd[i] is the wall clock read next to nanotime() at the end of mark termination. So
// the server writes one "stw_cycle" event per cycle whose END is exact and whose start is not a real
// moment; the Python adapter splits it into its two phases with the runtime's GODEBUG=gctrace=1 line
// for the cycle (gcbench/probes/go_gctrace.py), after the cell.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	_ "unsafe" // for go:linkname
)

// nanotime is the runtime's CLOCK_MONOTONIC reading (vDSO clock_gettime on Linux), the harness's clock.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

const (
	protocolVersion   = "2025-06-18"
	flushEveryEvents  = 10_000
	drainEveryCycles  = 128 // half the runtime's 256-entry pause buffer
	pauseBufferLen    = 256
	clockRingLen      = 2*drainEveryCycles + 8 // two samples per change of the cycle count between drains
	clockStepNs       = 1_000_000              // an offset change beyond this between samples is a clock step
	clockReadTightNs  = 20_000                 // a pair read within this needs no second try
	clockReadTries    = 3                      // a pair read across a preemption is read again, up to this
	clockSlackNs      = 10_000                 // a conversion this close to its bracket still counts as inside
	maxHTTPBodyBytes  = 64 << 20
	maxLineBytes      = 256 << 20
	oobMinHeapBytes   = 4 << 20 // the runtime's minimum heap goal at GOGC=100
	metricCycles      = "/gc/cycles/total:gc-cycles"
	metricHeapLive    = "/gc/heap/live:bytes"
	metricHeapObjects = "/memory/classes/heap/objects:bytes"
	metricScanStack   = "/gc/scan/stack:bytes"
	metricScanGlobals = "/gc/scan/globals:bytes"
)

var workArgNames = [...]string{"alloc_objects", "cyclic_fraction", "retain_objects", "retain_cap",
	"payload_bytes", "cpu_iters", "sleep_us", "retain_shape"}

// The heap shapes of ../PROTOCOL.md ("Heap shapes"); an absent retain_shape means the first.
var heapShapes = [...]string{"lists", "records", "instances", "json"}

// The work tool's small heap object: two reference fields, like the other runtimes' objects.
type node struct{ a, b *node }

// record is the `instances` shape: record k of a batch (the start-up heap, or one call's retained objects)
// has an int, a short string, a small list, a nested map and a pointer to record (k-1)/2 of the same batch
// (nil for the first), as in every runtime. `records` is the same record as map[string]any (with []any and a
// nested map[string]any), `json` encoding/json's decoding of the document into an `any` (maps, []any, float64).
type record struct {
	id   int64
	name string
	tags []int64
	meta map[string]int64
	ref  *record
}

// Globals so that nothing the work tool makes can be kept off the heap or optimised away.
var (
	startupHeap any                      // []*node, []map[string]any, []*record or []any (json), by shape
	callGarbage atomic.Pointer[[]*node] // the latest call's garbage: stored so that it must be on the heap
	cpuSink     atomic.Uint64
)

func knownShape(shape string) bool {
	for _, s := range heapShapes {
		if s == shape {
			return true
		}
	}
	return false
}

// recordDoc is the `json` shape's document: a JSON array of count records; a reference is the other's id.
func recordDoc(count int) []byte {
	b := make([]byte, 0, count*96+2)
	b = append(b, '[')
	for k := 0; k < count; k++ {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = strconv.AppendInt(b, int64(k), 10)
		b = append(b, `,"name":"rec-`...)
		b = strconv.AppendInt(b, int64(k), 10)
		b = append(b, `","tags":[`...)
		b = strconv.AppendInt(b, int64(k), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(k+1), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(k+2), 10)
		b = append(b, `],"meta":{"size":`...)
		b = strconv.AppendInt(b, int64(k), 10)
		b = append(b, `,"score":`...)
		b = strconv.AppendInt(b, int64(k%100), 10)
		b = append(b, `},"ref":`...)
		if k > 0 {
			b = strconv.AppendInt(b, int64((k-1)/2), 10)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// buildObjects makes count objects of a shape, in a slice of the shape's type (the start-up heap keeps it
// whole). doc is the `json` document (recordDoc(count)), or nil to make it here.
func buildObjects(shape string, count int, doc []byte) any {
	switch shape {
	case "lists":
		out := make([]*node, count)
		for i := range out {
			out[i] = &node{}
		}
		return out
	case "records":
		out := make([]map[string]any, count)
		for k := range out {
			var ref any
			if k > 0 {
				ref = out[(k-1)/2]
			}
			out[k] = map[string]any{
				"id":   int64(k),
				"name": "rec-" + strconv.Itoa(k),
				"tags": []any{int64(k), int64(k + 1), int64(k + 2)},
				"meta": map[string]any{"size": int64(k), "score": int64(k % 100)},
				"ref":  ref,
			}
		}
		return out
	case "instances":
		out := make([]*record, count)
		for k := range out {
			var ref *record
			if k > 0 {
				ref = out[(k-1)/2]
			}
			out[k] = &record{id: int64(k), name: "rec-" + strconv.Itoa(k), tags: []int64{int64(k), int64(k + 1), int64(k + 2)},
				meta: map[string]int64{"size": int64(k), "score": int64(k % 100)}, ref: ref}
		}
		return out
	case "json":
		if doc == nil {
			doc = recordDoc(count)
		}
		var v []any
		if err := json.Unmarshal(doc, &v); err != nil {
			panic(err) // our own document
		}
		return v
	}
	panic("unknown heap shape " + shape)
}

type workArgs struct {
	allocObjects   int64
	cyclicFraction float64
	retainObjects  int64
	retainCap      int64
	payloadBytes   int64
	cpuIters       int64
	sleepUs        int64
	retainShape    string
}

type pauseEvent struct {
	cycle   uint32
	endNs   int64 // CLOCK_MONOTONIC
	pauseNs int64
	oob     bool // a whole runtime.GC() run between calls (oob mode), not a stop-the-world pause
}

// clockSample is one (wall, monotonic) pair, read after a response: PauseEnd is wall-clock time, and
// the wall clock can be stepped (NTP, an administrator), so each cycle is converted with the offset of
// a pair read close to it, never with one read long after.
type clockSample struct {
	monoNs  int64  // CLOCK_MONOTONIC: the midpoint of two reads around the wall-clock read
	wallNs  int64  // Unix ns
	widthNs int64  // between the two monotonic reads: the offset is known to within half of it
	numGC   uint32 // cycles completed before the pair was read
}

func (c clockSample) offsetNs() int64 { return c.wallNs - c.monoNs }

func absNs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// monoOfWall converts wall-clock Unix ns to CLOCK_MONOTONIC for a cycle that ended between the samples
// prev and next (hasPrev false: no sample before it, e.g. a cycle during start-up). When their offsets
// differ (a clock step in between), the conversion that lands inside [prev, next] is the right one;
// when both or neither do (a step smaller than the bracket), the one that lands nearer its own sample,
// so the error is at most the step.
func monoOfWall(wallNs int64, prev, next clockSample, hasPrev bool) int64 {
	b := wallNs - next.offsetNs()
	if !hasPrev || prev.offsetNs() == next.offsetNs() {
		return b
	}
	a := wallNs - prev.offsetNs()
	inside := func(t int64) bool { return t >= prev.monoNs-clockSlackNs && t <= next.monoNs+clockSlackNs }
	if inside(a) != inside(b) {
		if inside(a) {
			return a
		}
		return b
	}
	if absNs(a-prev.monoNs) <= absNs(next.monoNs-b) {
		return a
	}
	return b
}

// clockRing keeps, of the samples read since the last drain, those that bracket each new cycle: the
// last sample before the cycle count changed and the first after. Preallocated; nothing on the call path.
type clockRing struct {
	kept    [clockRingLen]clockSample // numGC non-decreasing
	n       int
	last    clockSample // the most recent sample (kept or not)
	started bool

	samples uint64
	steps   uint64 // offset changes beyond clockStepNs between consecutive samples
	stepMax int64  // the largest offset change between consecutive samples, ns
	dropped uint64 // samples pushed out of a full ring (should stay 0)
}

func (r *clockRing) push(c clockSample) {
	if r.n == len(r.kept) {
		copy(r.kept[:], r.kept[1:])
		r.n--
		r.dropped++
	}
	r.kept[r.n] = c
	r.n++
}

func (r *clockRing) add(c clockSample) {
	r.samples++
	if !r.started {
		r.push(c)
	} else {
		step := absNs(c.offsetNs() - r.last.offsetNs())
		if step > r.stepMax {
			r.stepMax = step
		}
		// a thread descheduled between the reads of a pair makes its offset uncertain by half the
		// pair's width: only a change beyond both pairs' uncertainty is a step (measured under load:
		// 2 false steps in a 60-call run of the old rule)
		if step > clockStepNs+(c.widthNs+r.last.widthNs)/2 {
			r.steps++
		}
		if c.numGC != r.last.numGC {
			if r.n == 0 || r.kept[r.n-1] != r.last {
				r.push(r.last)
			}
			r.push(c)
		}
	}
	r.last, r.started = c, true
}

// bracket returns the last kept sample with numGC < cycle (ok false if none) and the first with
// numGC >= cycle (the latest sample if none), scanning from *from, which it advances: call it for
// cycles in increasing order.
func (r *clockRing) bracket(cycle uint32, from *int) (prev clockSample, hasPrev bool, next clockSample) {
	i := *from
	for i < r.n && r.kept[i].numGC < cycle {
		i++
	}
	*from = i
	if i > 0 {
		prev, hasPrev = r.kept[i-1], true
	}
	if i < r.n {
		return prev, hasPrev, r.kept[i]
	}
	return prev, hasPrev, r.last
}

// forget keeps only the latest sample: every cycle up to its numGC has been converted.
func (r *clockRing) forget() {
	if r.started {
		r.kept[0] = r.last
		r.n = 1
	}
}

// readClock reads a (wall, monotonic) pair; a pair whose monotonic reads lie far apart (the thread
// was descheduled between them) is read again, and the tightest of the tries is kept.
func readClock(numGC uint32) clockSample {
	var best clockSample
	for try := 0; try < clockReadTries; try++ {
		m0 := nanotime()
		wall := time.Now().UnixNano()
		m1 := nanotime()
		if try == 0 || m1-m0 < best.widthNs {
			best = clockSample{monoNs: m0 + (m1-m0)/2, wallNs: wall, widthNs: m1 - m0, numGC: numGC}
		}
		if best.widthNs <= clockReadTightNs {
			break
		}
	}
	return best
}

// Concurrency (../PROTOCOL.md "Concurrency"): every tools/call runs in its own goroutine (stdio: one per
// request line; HTTP: net/http's goroutine per connection) and holds gate for reading while it works;
// gcbench/measure, gcbench/flush, an out-of-band collection and the exit hold it for writing, so they wait
// for the calls in flight and calls that arrive meanwhile wait for them. cacheMu guards only the retained
// cache; evMu the buffered events, the clock ring and the counters of the stats record; outMu stdout.
type server struct {
	gate       sync.RWMutex
	cacheMu    sync.Mutex
	evMu       sync.Mutex
	outMu      sync.Mutex
	oob        bool
	eventsPath string

	cache    []any // the long-lived cache (retain_objects); a *node is stored in the interface without allocating
	cachePos int64
	docCount int    // the last `json` document retained, as text, as a tool receives it
	doc      []byte

	events       []pauseEvent
	written      int
	lost         uint32 // pauses that fell out of the 256-entry buffer before a drain (should stay 0)
	seenNumGC    uint32 // cycles whose pause is already in events
	gcStats      debug.GCStats
	pauseNs      [pauseBufferLen]uint64 // ReadGCStats' copy, back in the runtime's circular layout
	pauseEnd     [pauseBufferLen]uint64
	cyclesSample []metrics.Sample // read after every response (plus the heap metrics in oob mode)
	clocks       clockRing        // a (wall, monotonic) pair after every response

	oobCollections uint64
	oobCollectNs   int64 // wall time spent in runtime.GC() between calls: the server is busy meanwhile

	measureNumGC            uint32
	measureGCCPUSeconds     float64
	measureAssistCPUSeconds float64

	meter *hiccupMeter // nil unless GCBENCH_HICCUP_US is set
}

// ---- JSON-RPC ----

type request struct {
	JSONRPC json.RawMessage `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  json.RawMessage `json:"method"`
	Params  json.RawMessage `json:"params"`
}

var toolsListResult = mustJSON(map[string]any{"tools": []any{workTool()}})

func workTool() map[string]any {
	props := map[string]any{}
	for _, name := range workArgNames {
		kind := "integer"
		if name == "cyclic_fraction" {
			kind = "number"
		}
		props[name] = map[string]any{"type": kind, "minimum": 0}
	}
	props["retain_shape"] = map[string]any{"type": "string", "enum": heapShapes[:]}
	return map[string]any{
		"name":        "work",
		"description": "Simulated tool: allocates, retains, computes, sleeps and answers with a payload.",
		"inputSchema": map[string]any{"type": "object", "properties": props, "additionalProperties": false},
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// Each reply is built in its own buffer (with room for the newline of stdio): calls answer concurrently.
func (s *server) result(id json.RawMessage, result []byte) []byte {
	b := make([]byte, 0, len(id)+len(result)+40)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	b = append(b, result...)
	return append(b, '}')
}

func (s *server) rpcError(id json.RawMessage, code int, msg string) []byte {
	if id == nil {
		id = json.RawMessage("null")
	}
	b := make([]byte, 0, len(id)+len(msg)+64)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"error":{"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, msg)
	return append(b, "}}"...)
}

func (s *server) toolResult(id json.RawMessage, text []byte, isError bool) []byte {
	b := make([]byte, 0, len(id)+len(text)+96)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"result":{"content":[{"type":"text","text":`...)
	if isError {
		b = appendJSONString(b, string(text))
		b = append(b, `}],"isError":true}}`...)
	} else {
		b = append(b, '"')
		b = append(b, text...) // only ASCII 'x': nothing to escape
		b = append(b, `"}],"isError":false}}`...)
	}
	return b
}

// How a request holds the gate while it is answered.
type access int

const (
	noGate    access = iota // answered at once, touches no shared state (initialize, ping, errors)
	call                    // tools/call: gate held for reading, alongside other calls
	exclusive               // gcbench/measure, gcbench/flush: gate held for writing
)

// parse reads one message (json.Unmarshal copies what it keeps, so the line may be reused). A message that
// is not a valid request gets its error reply (bad true); a notification gets neither reply nor id.
func (s *server) parse(line []byte) (req request, method string, reply []byte, bad bool) {
	if err := json.Unmarshal(line, &req); err != nil {
		if json.Valid(line) {
			return req, "", s.rpcError(nil, -32600, "Invalid Request"), true
		}
		return req, "", s.rpcError(nil, -32700, "Parse error"), true
	}
	if string(req.JSONRPC) != `"2.0"` || json.Unmarshal(req.Method, &method) != nil {
		return req, "", s.rpcError(req.ID, -32600, "Invalid Request"), true
	}
	return req, method, nil, false
}

func accessOf(method string) access {
	switch method {
	case "tools/call":
		return call
	case "gcbench/measure", "gcbench/flush":
		return exclusive
	}
	return noGate
}

// answer answers a parsed request with an id; the caller holds the gate as accessOf(method) says.
func (s *server) answer(req request, method string) []byte {
	id := req.ID
	switch method {
	case "tools/call":
		var p struct {
			Name      *string         `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if json.Unmarshal(req.Params, &p) != nil || p.Name == nil || *p.Name != "work" {
			name := string(req.Params)
			if p.Name != nil {
				name = *p.Name
			}
			return s.rpcError(id, -32602, "Unknown tool: "+name)
		}
		args, problem := parseWorkArgs(p.Arguments)
		if problem != "" {
			return s.toolResult(id, []byte(problem), true)
		}
		return s.toolResult(id, s.work(args), false)
	case "initialize":
		var p struct {
			ProtocolVersion json.RawMessage `json:"protocolVersion"`
		}
		version := []byte(`"` + protocolVersion + `"`)
		if json.Unmarshal(req.Params, &p) == nil && len(p.ProtocolVersion) > 0 && p.ProtocolVersion[0] == '"' {
			version = p.ProtocolVersion
		}
		res := append([]byte(`{"protocolVersion":`), version...)
		res = append(res, `,"capabilities":{"tools":{}},"serverInfo":{"name":"gcbench-go","version":`...)
		res = appendJSONString(res, runtime.Version())
		res = append(res, "}}"...)
		return s.result(id, res)
	case "ping":
		return s.result(id, []byte("{}"))
	case "tools/list":
		return s.result(id, toolsListResult)
	case "gcbench/measure":
		s.evMu.Lock()
		s.markMeasure()
		s.evMu.Unlock()
		return s.result(id, []byte("{}"))
	case "gcbench/flush":
		s.evMu.Lock()
		n := s.flush()
		s.evMu.Unlock()
		return s.result(id, []byte(`{"events":`+strconv.Itoa(n)+`}`))
	}
	return s.rpcError(id, -32601, "Method not found: "+method)
}

// ---- the work tool ----

// parseWorkArgs returns the arguments, or a message naming the bad argument.
func parseWorkArgs(raw json.RawMessage) (workArgs, string) {
	a := workArgs{retainShape: heapShapes[0]}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return a, ""
	}
	var m map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return a, "arguments must be an object"
	}
	for name := range m {
		known := false
		for _, k := range workArgNames {
			known = known || k == name
		}
		if !known {
			return a, fmt.Sprintf("unknown argument %q", name)
		}
	}
	ints := [...]*int64{&a.allocObjects, nil, &a.retainObjects, &a.retainCap, &a.payloadBytes, &a.cpuIters, &a.sleepUs, nil}
	for i, name := range workArgNames {
		v, ok := m[name]
		if !ok {
			continue
		}
		if name == "retain_shape" {
			var shape string
			if json.Unmarshal(v, &shape) != nil || !knownShape(shape) {
				return a, fmt.Sprintf("argument %q must be one of %s", name, strings.Join(heapShapes[:], ", "))
			}
			a.retainShape = shape
			continue
		}
		if ints[i] == nil { // cyclic_fraction
			f, err := strconv.ParseFloat(string(v), 64)
			if len(v) == 0 || !(v[0] == '-' || v[0] >= '0' && v[0] <= '9') || err != nil || !(f >= 0 && f <= 1) {
				return a, fmt.Sprintf("argument %q must be a number from 0 to 1", name)
			}
			a.cyclicFraction = f
			continue
		}
		n, err := strconv.ParseInt(string(v), 10, 64) // rejects 1.0, 1e3, strings, booleans and null
		if err != nil || n < 0 {
			return a, fmt.Sprintf("argument %q must be a non-negative integer", name)
		}
		*ints[i] = n
	}
	return a, ""
}

// work does one call's simulated work and returns the payload text.
// Order: allocate (with cycles) -> retain -> cpu -> sleep -> build payload -> drop the garbage.
func (s *server) work(a workArgs) []byte {
	nCyclic := int64(float64(a.allocObjects)*a.cyclicFraction) &^ 1 // pairs
	garbage := make([]*node, 0, a.allocObjects)
	for i := int64(0); i < nCyclic/2; i++ {
		x := &node{}
		y := &node{a: x}
		x.a = y
		garbage = append(garbage, x, y)
	}
	for i := nCyclic; i < a.allocObjects; i++ {
		garbage = append(garbage, &node{})
	}
	callGarbage.Store(&garbage)
	if a.retainObjects > 0 {
		s.retain(a.retainObjects, a.retainCap, a.retainShape)
	}
	if a.cpuIters > 0 {
		x := cpuSink.Load() | 1
		for i := int64(0); i < a.cpuIters; i++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
		cpuSink.Store(x)
	}
	if a.sleepUs > 0 {
		time.Sleep(time.Duration(a.sleepUs) * time.Microsecond)
	}
	text := bytes.Repeat([]byte{'x'}, int(a.payloadBytes))
	callGarbage.CompareAndSwap(&garbage, nil) // unless a later call has stored its own
	runtime.KeepAlive(garbage)
	return text
}

// retain builds the call's objects outside any lock, then puts them in the cache under cacheMu.
func (s *server) retain(count, capacity int64, shape string) {
	if shape == "lists" { // one object at a time, as before shapes existed
		s.cacheMu.Lock()
		for i := int64(0); i < count; i++ {
			s.keep(&node{}, capacity)
		}
		s.cacheMu.Unlock()
		return
	}
	var doc []byte
	if shape == "json" {
		s.cacheMu.Lock()
		if s.docCount != int(count) {
			s.doc, s.docCount = recordDoc(int(count)), int(count)
		}
		doc = s.doc // never written after it is stored: a new count makes a new slice
		s.cacheMu.Unlock()
	}
	batch := buildObjects(shape, int(count), doc)
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	switch batch := batch.(type) {
	case []map[string]any:
		for _, obj := range batch {
			s.keep(obj, capacity)
		}
	case []*record:
		for _, obj := range batch {
			s.keep(obj, capacity)
		}
	case []any:
		for _, obj := range batch {
			s.keep(obj, capacity)
		}
	}
}

func (s *server) keep(obj any, capacity int64) {
	if capacity > 0 && int64(len(s.cache)) >= capacity {
		s.cache[s.cachePos%capacity] = obj
		s.cachePos++
	} else {
		s.cache = append(s.cache, obj)
	}
}

// ---- GC pauses ----

// afterResponse runs after each response, outside the call it follows (other calls may be in flight);
// the caller holds no lock. The oob collection runs only when no call is in flight: it takes the gate for
// writing (TryLock), so a call arriving meanwhile waits for it. When calls keep overlapping and no gap
// comes, a collection that is overdue (the heap at twice the goal) waits for the calls in flight instead.
func (s *server) afterResponse() {
	if s.oob {
		s.evMu.Lock()
		metrics.Read(s.cyclesSample)
		due, overdue := s.oobDue()
		s.evMu.Unlock()
		// the gate before evMu, as every holder of both takes them
		if due && (s.gate.TryLock() || overdue && lockGate(&s.gate)) {
			s.evMu.Lock()
			t0 := nanotime()
			runtime.GC() // blocking: mark and sweep, not only the two stop-the-world pauses
			t1 := nanotime()
			s.oobCollections++
			s.oobCollectNs += t1 - t0
			// the server does nothing else meanwhile: a call arriving now waits, so it is an event too
			s.events = append(s.events, pauseEvent{endNs: t1, pauseNs: t1 - t0, oob: true})
			s.evMu.Unlock()
			s.gate.Unlock()
		}
	}
	s.evMu.Lock()
	defer s.evMu.Unlock()
	metrics.Read(s.cyclesSample[:1])
	numGC := uint32(s.cyclesSample[0].Value.Uint64())
	s.clocks.add(readClock(numGC)) // after the metric: every cycle it counts ended before this pair
	if numGC-s.seenNumGC >= drainEveryCycles {
		s.drainPauses()
	}
}

func lockGate(gate *sync.RWMutex) bool {
	gate.Lock()
	return true
}

// oobDue says whether GOGC=100 would have started a collection by now: the heap has grown past
// live + (live + stacks + globals) * 100%, the runtime's heap goal (at least 4 MiB). The automatic
// collector triggers somewhat before its goal, so out-of-band collections run a little less often.
// overdue: the heap has reached twice the goal.
func (s *server) oobDue() (due, overdue bool) {
	v := func(i int) uint64 {
		if s.cyclesSample[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s.cyclesSample[i].Value.Uint64()
	}
	live, heap, stacks, globals := v(1), v(2), v(3), v(4)
	goal := live + live + stacks + globals
	if goal < oobMinHeapBytes {
		goal = oobMinHeapBytes
	}
	return heap >= goal, heap >= 2*goal
}

// drainPauses appends the pauses recorded since the last drain, from ReadGCStats: it copies the
// runtime's buffer under the heap lock without stopping the world, so it can run after any response.
func (s *server) drainPauses() {
	debug.ReadGCStats(&s.gcStats)
	numGC := uint32(s.gcStats.NumGC)
	for i := range s.gcStats.Pause { // most recent first: back into the runtime's circular layout
		idx := (numGC - 1 - uint32(i)) % pauseBufferLen
		s.pauseNs[idx] = uint64(s.gcStats.Pause[i])
		s.pauseEnd[idx] = uint64(s.gcStats.PauseEnd[i].UnixNano())
	}
	s.appendPauses(numGC, &s.pauseNs, &s.pauseEnd)
}

// appendPauses buffers an event for each cycle after seenNumGC up to numGC, from the runtime's circular
// buffers (cycle c at index (c-1) % 256; pauseEnd is wall-clock Unix ns).
func (s *server) appendPauses(numGC uint32, pauseNs, pauseEnd *[pauseBufferLen]uint64) {
	s.clocks.add(readClock(numGC)) // closes the bracket of the cycles since the last response
	s.convertPauses(numGC, pauseNs, pauseEnd)
}

// convertPauses is appendPauses without reading the clock: each cycle's end is converted to
// CLOCK_MONOTONIC with the clock samples that bracket it.
func (s *server) convertPauses(numGC uint32, pauseNs, pauseEnd *[pauseBufferLen]uint64) {
	fresh := numGC - s.seenNumGC
	if fresh > pauseBufferLen {
		s.lost += fresh - pauseBufferLen
		fresh = pauseBufferLen
	}
	from := 0
	for i := fresh; i > 0; i-- {
		c := numGC - i + 1 // oldest first
		idx := (c - 1) % pauseBufferLen
		prev, hasPrev, next := s.clocks.bracket(c, &from)
		s.events = append(s.events, pauseEvent{
			cycle:   c,
			endNs:   monoOfWall(int64(pauseEnd[idx]), prev, next, hasPrev),
			pauseNs: int64(pauseNs[idx]),
		})
	}
	s.seenNumGC = numGC
	s.clocks.forget()
	if len(s.events) >= flushEveryEvents {
		s.writeEvents(nil)
	}
}

// markMeasure starts the "_measured" counters of the stats record: the warm-up is over.
func (s *server) markMeasure() {
	if s.meter != nil {
		s.meter.reset()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := s.runtimeStats(&ms)
	s.measureNumGC = st["num_gc"].(uint32)
	s.measureGCCPUSeconds, _ = st["gc_cpu_seconds"].(float64)
	s.measureAssistCPUSeconds, _ = st["gc_assist_cpu_seconds"].(float64)
}

// flush writes every buffered event and a stats record; returns the number of events written in total.
func (s *server) flush() int {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms) // one snapshot for events and stats, so num_gc matches the events exactly
	s.appendPauses(ms.NumGC, &ms.PauseNs, &ms.PauseEnd)
	s.writeEvents(&ms)
	return s.written
}

// writeEvents appends the buffered events, and a stats record from ms unless it is nil, to the file.
func (s *server) writeEvents(ms *runtime.MemStats) {
	events := s.events
	s.events = s.events[:0]
	if s.eventsPath == "" {
		return
	}
	pid := os.Getpid()
	var b []byte
	for _, e := range events {
		if e.oob {
			b = append(b, `{"type":"gc","runtime":"go","kind":"oob-collect","generation":-1,"start_ns":`...)
		} else {
			// both phases of the cycle: the end is exact, the start is not a real moment (see the top)
			b = append(b, `{"type":"gc","runtime":"go","kind":"stw_cycle","generation":-1,"start_ns":`...)
		}
		b = strconv.AppendInt(b, e.endNs-e.pauseNs, 10)
		b = append(b, `,"end_ns":`...)
		b = strconv.AppendInt(b, e.endNs, 10)
		b = append(b, `,"pause_ns":`...)
		b = strconv.AppendInt(b, e.pauseNs, 10)
		b = append(b, `,"cycle":`...)
		b = strconv.AppendUint(b, uint64(e.cycle), 10)
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, int64(pid), 10)
		b = append(b, "}\n"...)
	}
	if s.meter != nil {
		b = s.meter.appendEvents(b, pid)
	}
	if ms != nil {
		st := s.runtimeStats(ms)
		st["type"] = "stats"
		st["runtime"] = "go"
		b = append(b, mustJSON(st)...)
		b = append(b, '\n')
	}
	f, err := os.OpenFile(s.eventsPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gcbench go server: cannot write events: %v\n", err)
		return
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		fmt.Fprintf(os.Stderr, "gcbench go server: cannot write events: %v\n", err)
		return
	}
	s.written += len(events)
}

// maxRSSBytes is this process's peak resident set size (VmHWM, the kernel's high-water mark), 0 if
// unknown. Not getrusage's Maxrss: Linux carries it across execve, so a server started by the harness would
// report the harness's own peak.
func maxRSSBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

// runtimeStats combines MemStats (read by the caller: a short stop-the-world, so only on measure and
// flush, outside any call) with the GC CPU-time metrics, which show the cost of concurrent marking and
// assists, not only pauses.
func (s *server) runtimeStats(ms *runtime.MemStats) map[string]any {
	st := map[string]any{
		"go_version":       runtime.Version(),
		"num_gc":           ms.NumGC,
		"num_forced_gc":    ms.NumForcedGC,
		"num_gc_measured":  ms.NumGC - s.measureNumGC,
		"gc_cpu_fraction":  ms.GCCPUFraction,
		"pause_total_ns":   ms.PauseTotalNs,
		"heap_alloc_bytes": ms.HeapAlloc,
		"heap_sys_bytes":   ms.HeapSys,
		"sys_bytes":        ms.Sys,
		"max_rss_bytes":    maxRSSBytes(),
		"next_gc_bytes":    ms.NextGC,
		"pauses_lost":      s.lost,
		"oob_collections":  s.oobCollections,
		"oob_collect_ns":   s.oobCollectNs,
		// the wall-to-monotonic conversion of PauseEnd
		"clock_samples":           s.clocks.samples,
		"clock_steps":             s.clocks.steps,
		"clock_step_max_ns":       s.clocks.stepMax,
		"clock_samples_dropped":   s.clocks.dropped,
		"clock_step_threshold_ns": clockStepNs,
	}
	named := map[string]string{
		"/cpu/classes/gc/total:cpu-seconds":          "gc_cpu_seconds",
		"/cpu/classes/gc/mark/assist:cpu-seconds":    "gc_assist_cpu_seconds",
		"/cpu/classes/gc/mark/dedicated:cpu-seconds": "gc_mark_dedicated_cpu_seconds",
		"/cpu/classes/gc/mark/idle:cpu-seconds":      "gc_mark_idle_cpu_seconds",
		"/cpu/classes/gc/pause:cpu-seconds":          "gc_pause_cpu_seconds",
		"/cpu/classes/total:cpu-seconds":             "total_cpu_seconds",
		"/gc/gogc:percent":                           "gogc_percent",
		"/gc/gomemlimit:bytes":                       "gomemlimit_bytes",
		"/gc/heap/live:bytes":                        "heap_live_bytes",
		"/sched/pauses/total/gc:seconds":             "gc_stw_pauses", // a histogram: its count
	}
	samples := make([]metrics.Sample, 0, len(named))
	for m := range named {
		samples = append(samples, metrics.Sample{Name: m})
	}
	metrics.Read(samples)
	for _, smp := range samples {
		key := named[smp.Name]
		switch smp.Value.Kind() {
		case metrics.KindUint64:
			st[key] = smp.Value.Uint64()
			if key == "gogc_percent" && smp.Value.Uint64() > math.MaxInt64 {
				st[key] = -1 // GOGC=off
			}
		case metrics.KindFloat64:
			st[key] = smp.Value.Float64()
		case metrics.KindFloat64Histogram:
			var n uint64
			for _, c := range smp.Value.Float64Histogram().Counts {
				n += c
			}
			st[key] = n
		}
	}
	if v, ok := st["gc_cpu_seconds"].(float64); ok {
		st["gc_cpu_seconds_measured"] = v - s.measureGCCPUSeconds
	}
	if s.meter != nil {
		s.meter.addStats(st)
	}
	if v, ok := st["gc_assist_cpu_seconds"].(float64); ok {
		st["gc_assist_cpu_seconds_measured"] = v - s.measureAssistCPUSeconds
	}
	return st
}

// ---- the hiccup meter ----

// hiccupMeter is jHiccup's idea: a goroutine sleeps a fixed interval and records how late it woke.
// It never takes the server's locks, so request handling does not delay it (GOMAXPROCS > 1); what it sees is the
// stop-the-world pauses, the scheduler and the machine.
type hiccupMeter struct {
	intervalNs int64
	floorNs    int64
	wakeups    atomic.Int64
	hiccups    atomic.Int64
	maxLateNs  atomic.Int64
	dropped    atomic.Int64
	mu         sync.Mutex // guards events only
	events     []int64    // pairs: when it should have woken, when it woke (CLOCK_MONOTONIC ns)
}

const hiccupMaxEvents = 1_000_000 // unflushed; beyond it hiccups are only counted

func envInt(name string, def int64) (int64, error) {
	text := strings.TrimSpace(os.Getenv(name))
	if text == "" {
		return def, nil
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s=%q is not a non-negative integer", name, text)
	}
	return v, nil
}

// hiccupMeterFromEnv reads GCBENCH_HICCUP_US (0 or unset: no meter) and GCBENCH_HICCUP_FLOOR_US (default 200).
func hiccupMeterFromEnv() (*hiccupMeter, error) {
	intervalUs, err := envInt("GCBENCH_HICCUP_US", 0)
	if err != nil {
		return nil, err
	}
	floorUs, err := envInt("GCBENCH_HICCUP_FLOOR_US", 200)
	if err != nil || intervalUs == 0 {
		return nil, err
	}
	return &hiccupMeter{intervalNs: intervalUs * 1000, floorNs: floorUs * 1000}, nil
}

func (m *hiccupMeter) run() {
	interval := time.Duration(m.intervalNs)
	for {
		t0 := nanotime()
		time.Sleep(interval)
		woke := nanotime()
		due := t0 + m.intervalNs
		m.wakeups.Add(1)
		late := woke - due
		if late > m.maxLateNs.Load() {
			m.maxLateNs.Store(late) // only this goroutine raises it
		}
		if late > m.floorNs {
			m.hiccups.Add(1)
			m.mu.Lock()
			if len(m.events) < 2*hiccupMaxEvents {
				m.events = append(m.events, due, woke)
			} else {
				m.dropped.Add(1)
			}
			m.mu.Unlock()
		}
	}
}

// reset starts the counters again (gcbench/measure); buffered events stay, the harness windows them.
func (m *hiccupMeter) reset() {
	m.wakeups.Store(0)
	m.hiccups.Store(0)
	m.maxLateNs.Store(0)
	m.dropped.Store(0)
}

// appendEvents moves the buffered hiccups to b as side-channel lines.
func (m *hiccupMeter) appendEvents(b []byte, pid int) []byte {
	m.mu.Lock()
	events := m.events
	m.events = nil
	m.mu.Unlock()
	for i := 0; i+1 < len(events); i += 2 {
		b = append(b, `{"type":"hiccup","runtime":"go","kind":"hiccup","generation":-1,"start_ns":`...)
		b = strconv.AppendInt(b, events[i], 10)
		b = append(b, `,"end_ns":`...)
		b = strconv.AppendInt(b, events[i+1], 10)
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, int64(pid), 10)
		b = append(b, "}\n"...)
	}
	return b
}

func (m *hiccupMeter) addStats(st map[string]any) {
	st["hiccup_interval_us"] = m.intervalNs / 1000
	st["hiccup_floor_us"] = m.floorNs / 1000
	st["hiccup_wakeups"] = m.wakeups.Load()
	st["hiccup_count"] = m.hiccups.Load()
	st["hiccup_max_late_ns"] = m.maxLateNs.Load()
	st["hiccup_dropped"] = m.dropped.Load()
}

// ---- transports ----

// serveStdio reads requests on this goroutine and answers each tools/call in a goroutine of its own; every
// response is one whole line, written under outMu. A control method waits for the calls read before it.
func (s *server) serveStdio() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		req, method, reply, _ := s.parse(line)
		switch {
		case reply != nil:
			s.writeLine(reply)
		case req.ID == nil: // a notification: no answer
		case accessOf(method) == call:
			s.gate.RLock() // here, not in the goroutine: a control method read next must wait for this call
			go func() {
				reply := s.answer(req, method)
				s.writeLine(reply)
				s.gate.RUnlock()
				s.afterResponse()
			}()
			continue
		case accessOf(method) == exclusive:
			s.gate.Lock()
			s.writeLine(s.answer(req, method))
			s.gate.Unlock()
		default:
			s.writeLine(s.answer(req, method))
		}
		s.afterResponse()
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "gcbench go server: reading stdin: %v\n", err)
	}
	s.exit(0)
}

// writeLine writes one response and its newline with one Write, under outMu (never interleaved).
func (s *server) writeLine(reply []byte) {
	s.outMu.Lock()
	_, err := os.Stdout.Write(append(reply, '\n'))
	s.outMu.Unlock()
	if err != nil { // the harness has gone; this goroutine may hold the gate, so flush without it
		s.evMu.Lock()
		s.flush()
		os.Exit(0)
	}
}

func (s *server) serveHTTP() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "gcbench go server: cannot listen: %v\n", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/mcp", s.handleHTTP)
	go func() { // the harness closes stdin to stop the server
		io.Copy(io.Discard, os.Stdin)
		s.exit(0)
	}()
	fmt.Fprintf(os.Stdout, "GCBENCH_LISTENING %d\n", ln.Addr().(*net.TCPAddr).Port)
	err = (&http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}).Serve(ln)
	fmt.Fprintf(os.Stderr, "gcbench go server: %v\n", err)
	s.exit(1)
}

// handleHTTP runs in net/http's goroutine for the connection: requests on different connections overlap.
func (s *server) handleHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && !loopbackOrigin(origin) {
		http.Error(w, "forbidden origin", http.StatusForbidden)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxHTTPBodyBytes))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	req, method, reply, bad := s.parse(body)
	if reply == nil && req.ID != nil {
		switch accessOf(method) {
		case call:
			s.gate.RLock()
			reply = s.answer(req, method)
			s.gate.RUnlock() // the tool's work is done; writing the response needs no lock
		case exclusive:
			s.gate.Lock()
			reply = s.answer(req, method)
			s.gate.Unlock()
		default:
			reply = s.answer(req, method)
		}
	}
	if reply == nil {
		w.WriteHeader(http.StatusAccepted)
	} else {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(reply)))
		if bad {
			w.WriteHeader(http.StatusBadRequest)
		}
		w.Write(reply)
	}
	w.(http.Flusher).Flush() // the response is on the wire before the work after it
	s.afterResponse()
}

// loopbackOrigin accepts http://127.0.0.1 and http://localhost, with any port.
func loopbackOrigin(origin string) bool {
	for _, host := range []string{"http://127.0.0.1", "http://localhost"} {
		if rest, ok := strings.CutPrefix(origin, host); ok {
			if rest == "" {
				return true
			}
			if port, ok := strings.CutPrefix(rest, ":"); ok {
				_, err := strconv.ParseUint(port, 10, 16)
				return err == nil
			}
		}
	}
	return false
}

// exit waits for the calls in flight (their responses are written), flushes the side channel and exits.
// The caller must not hold the gate.
func (s *server) exit(code int) {
	s.gate.Lock()
	s.evMu.Lock()
	s.flush()
	os.Exit(code)
}

func main() {
	mode := os.Getenv("GCBENCH_GC_MODE")
	// GOGC and GOMEMLIMIT are set by the adapter; the server itself only acts on oob.
	name, _, _ := strings.Cut(mode, ":")
	switch name {
	case "", "default", "disabled", "oob", "gogc", "memlimit":
	default:
		fmt.Fprintf(os.Stderr, "gcbench go server: unknown GC mode %q\n", mode)
		os.Exit(2)
	}
	heapObjects, _ := strconv.Atoi(os.Getenv("GCBENCH_HEAP_OBJECTS"))
	heapShape := os.Getenv("GCBENCH_HEAP_SHAPE")
	if heapShape == "" {
		heapShape = heapShapes[0]
	}
	if !knownShape(heapShape) {
		fmt.Fprintf(os.Stderr, "gcbench go server: unknown GCBENCH_HEAP_SHAPE %q (one of %s)\n", heapShape,
			strings.Join(heapShapes[:], ", "))
		os.Exit(2)
	}
	startupHeap = buildObjects(heapShape, heapObjects, nil)
	s := &server{oob: name == "oob", eventsPath: os.Getenv("GCBENCH_EVENTS")}
	meter, err := hiccupMeterFromEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gcbench go server: %v\n", err)
		os.Exit(2)
	}
	if meter != nil {
		s.meter = meter
		go meter.run() // after the start-up heap exists
	}
	s.cyclesSample = []metrics.Sample{{Name: metricCycles}}
	if s.oob {
		s.cyclesSample = append(s.cyclesSample, metrics.Sample{Name: metricHeapLive},
			metrics.Sample{Name: metricHeapObjects}, metrics.Sample{Name: metricScanStack},
			metrics.Sample{Name: metricScanGlobals})
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		s.exit(0)
	}()

	switch transport := os.Getenv("GCBENCH_TRANSPORT"); transport {
	case "", "stdio":
		s.serveStdio()
	case "http":
		s.serveHTTP()
	default:
		fmt.Fprintf(os.Stderr, "gcbench go server: unsupported transport %q\n", transport)
		os.Exit(2)
	}
}
