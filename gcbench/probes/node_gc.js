'use strict';
// GC probe for Node.js processes: records every V8 collection through perf_hooks and writes the
// side-channel file of ../backends/PROTOCOL.md.
//
// Two ways in, one instance per process (this module is loaded once):
//   - the built-in servers `require` it and call flush() on gcbench/flush;
//   - any Node MCP server gets it with NODE_OPTIONS="--require /path/to/node_gc.js".
// It does nothing unless GCBENCH_EVENTS is set, never writes to stdout, keeps events in typed arrays
// (no I/O per event) and flushes synchronously on exit, on SIGTERM and when stdin ends.
//
// Timing: V8 reports each GC pause to Node's GC prologue/epilogue callbacks; perf_hooks turns them into
// 'gc' entries whose startTime is milliseconds since performance.timeOrigin, both taken from libuv's
// uv_hrtime() (CLOCK_MONOTONIC on Linux). One pair (process.hrtime.bigint(), performance.now()) read at
// start-up gives timeOrigin in CLOCK_MONOTONIC ns, so an entry's start is origin + startTime * 1e6.
//
// Entries reach JavaScript asynchronously (a native immediate, then the observer's own immediate), so a
// flush first takes what the observer already holds (takeRecords), and before a natural exit the probe
// turns the loop once more. A GC in the last turn of the event loop before process.exit() or a fatal
// signal can still be missed: its entry was never delivered.
//
// With GCBENCH_HICCUP_US set the probe also runs the hiccup meter of PROTOCOL.md: a timer on the main
// thread that records how late it fired. It shares the event loop with the server, so it measures the
// loop's delay: GC pauses, but also the server's own request handling and anything else that blocks it.

const fs = require('fs');
const v8 = require('v8');
const { performance, PerformanceObserver, constants, monitorEventLoopDelay } = require('perf_hooks');

const FLUSH_EVERY_EVENTS = 10000;
const HICCUP_FLOOR_US = 200; // default: only wake-ups later than this are recorded as events
const HICCUP_MAX_EVENTS = 100000; // unflushed; beyond this hiccups are only counted
const KIND_NAMES = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};
const FORCED_FLAG = constants.NODE_PERFORMANCE_GC_FLAGS_FORCED;
const KIND_CODES = Object.fromEntries(Object.entries(KIND_NAMES).map(([code, name]) => [name, Number(code)]));

// performance.timeOrigin expressed in CLOCK_MONOTONIC ns; the read pair with the smallest gap wins.
function monotonicOriginNs() {
  let bestGapMs = Infinity;
  let originNs = 0n;
  for (let i = 0; i < 5; i++) {
    const beforeMs = performance.now();
    const hrNs = process.hrtime.bigint();
    const afterMs = performance.now();
    if (afterMs - beforeMs < bestGapMs) {
      bestGapMs = afterMs - beforeMs;
      originNs = hrNs - BigInt(Math.round(((beforeMs + afterMs) / 2) * 1e6));
    }
  }
  return originNs;
}

// This process's peak resident set size (VmHWM, the kernel's high-water mark), 0 where unknown. Not
// process.resourceUsage().maxRSS: getrusage carries it across execve, so a server started by the harness
// reports the harness's own peak (measured: 299 MiB where this process's RSS was 39 MiB).
function vmHwmBytes() {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync('/proc/self/status', 'latin1'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch (err) {
    return 0;
  }
}

class NodeGcProbe {
  constructor(path) {
    this.path = path;
    this.originNs = monotonicOriginNs();
    // One slot per event; written by the observer, read on flush.
    this.kinds = new Uint8Array(FLUSH_EVERY_EVENTS);
    this.flags = new Uint8Array(FLUSH_EVERY_EVENTS);
    this.startMs = new Float64Array(FLUSH_EVERY_EVENTS);
    this.durationMs = new Float64Array(FLUSH_EVERY_EVENTS);
    this.pending = 0;
    this.written = 0;
    this.flushes = 0;
    this.counts = { minor: 0, major: 0, incremental: 0, weakcb: 0 };
    this.pauseTotalMs = 0;
    // Notes from the oob collector, one per gc() call it made: its kind, the performance.now() window
    // around the call and the old generation in use before and after. Matched on flush to the forced
    // entry of that kind that started inside the window; unmatched notes wait for a later flush.
    this.noteKinds = new Uint8Array(FLUSH_EVERY_EVENTS);
    this.noteStartMs = new Float64Array(FLUSH_EVERY_EVENTS);
    this.noteEndMs = new Float64Array(FLUSH_EVERY_EVENTS);
    this.noteOldBefore = new Float64Array(FLUSH_EVERY_EVENTS);
    this.noteOldAfter = new Float64Array(FLUSH_EVERY_EVENTS);
    this.notes = 0;
    this.notesDropped = 0;
    this.observer = new PerformanceObserver((list) => this.record(list.getEntries()));
    this.observer.observe({ entryTypes: ['gc'] });
  }

  record(entries) {
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      const detail = e.detail || e; // `detail` since Node 16; older ones put kind/flags on the entry
      const n = this.pending;
      this.kinds[n] = detail.kind;
      this.flags[n] = detail.flags;
      this.startMs[n] = e.startTime;
      this.durationMs[n] = e.duration;
      this.pending = n + 1;
      const name = KIND_NAMES[detail.kind];
      if (name !== undefined) this.counts[name]++;
      this.pauseTotalMs += e.duration;
      if (this.pending === FLUSH_EVERY_EVENTS) this.flush();
    }
  }

  noteForced(kind, startMs, endMs, oldBeforeBytes, oldAfterBytes) {
    const n = this.notes;
    if (n === FLUSH_EVERY_EVENTS) {
      this.notesDropped++;
      return;
    }
    this.noteKinds[n] = KIND_CODES[kind];
    this.noteStartMs[n] = startMs;
    this.noteEndMs[n] = endMs;
    this.noteOldBefore[n] = oldBeforeBytes;
    this.noteOldAfter[n] = oldAfterBytes;
    this.notes = n + 1;
  }

  // The note for forced entry i, as extra JSON fields ('' if none); notes and entries are both in time
  // order, so one cursor walks the notes: `cursor.at` only moves forward.
  noteFieldsFor(i, cursor) {
    const start = this.startMs[i];
    while (cursor.at < this.notes && this.noteEndMs[cursor.at] < start) cursor.at++;
    const j = cursor.at;
    if (j === this.notes || this.noteStartMs[j] > start || this.noteKinds[j] !== this.kinds[i]) return '';
    cursor.at++;
    return `,"old_gen_before_bytes":${this.noteOldBefore[j]},"old_gen_after_bytes":${this.noteOldAfter[j]}`;
  }

  // Drop the notes before the cursor (matched, or passed by a later entry: theirs was never delivered).
  keepNotesFrom(at) {
    const left = this.notes - at;
    const columns = [this.noteKinds, this.noteStartMs, this.noteEndMs, this.noteOldBefore, this.noteOldAfter];
    for (const column of columns) column.copyWithin(0, at, this.notes);
    this.notes = left;
  }

  resetCounts() {
    for (const k of Object.keys(this.counts)) this.counts[k] = 0;
    this.pauseTotalMs = 0;
    if (this.meter) this.meter.reset();
  }

  // The hiccup meter, when GCBENCH_HICCUP_US asks for one (unset or 0: off).
  startMeterFromEnv(env = process.env) {
    const intervalUs = parseInt(env.GCBENCH_HICCUP_US || '0', 10) || 0;
    if (intervalUs > 0 && !this.meter) {
      const floorUs = parseInt(env.GCBENCH_HICCUP_FLOOR_US || '', 10);
      this.meter = new HiccupMeter(intervalUs, Number.isFinite(floorUs) && floorUs >= 0 ? floorUs : HICCUP_FLOOR_US);
    }
    return this;
  }

  statsRecord() {
    const heap = v8.getHeapStatistics();
    const mem = process.memoryUsage();
    const rec = {
      type: 'stats',
      runtime: 'node',
      node_version: process.version,
      v8_version: process.versions.v8,
      pid: process.pid,
      gc_minor: this.counts.minor,
      gc_major: this.counts.major,
      gc_incremental: this.counts.incremental,
      gc_weakcb: this.counts.weakcb,
      pause_total_ns: Math.round(this.pauseTotalMs * 1e6),
      heap_total_bytes: heap.total_heap_size,
      heap_used_bytes: heap.used_heap_size,
      heap_size_limit_bytes: heap.heap_size_limit,
      malloced_bytes: heap.malloced_memory,
      external_bytes: mem.external,
      rss_bytes: mem.rss,
      max_rss_bytes: vmHwmBytes(),
      oob_notes_dropped: this.notesDropped,
    };
    if (this.meter) Object.assign(rec, this.meter.stats());
    for (const space of v8.getHeapSpaceStatistics()) {
      if (space.space_name === 'new_space' || space.space_name === 'old_space') {
        rec[`${space.space_name}_size_bytes`] = space.space_size;
        rec[`${space.space_name}_used_bytes`] = space.space_used_size;
      }
    }
    return rec;
  }

  // Write buffered events and a stats record as JSON lines (one append); return the total written.
  flush() {
    if (this.pending < FLUSH_EVERY_EVENTS) {
      const taken = this.observer.takeRecords();
      if (taken.length) this.record(taken); // may flush by itself when it fills the buffer
    }
    const n = this.pending;
    const pid = process.pid;
    const lines = [];
    const cursor = { at: 0 };
    for (let i = 0; i < n; i++) {
      const startNs = this.originNs + BigInt(Math.round(this.startMs[i] * 1e6));
      const endNs = startNs + BigInt(Math.round(this.durationMs[i] * 1e6));
      const kind = KIND_NAMES[this.kinds[i]] || `kind${this.kinds[i]}`;
      const forced = this.flags[i] & FORCED_FLAG ? `,"forced":true${this.noteFieldsFor(i, cursor)}` : '';
      lines.push(
        `{"type":"gc","runtime":"node","kind":"${kind}","generation":-1,` +
          `"start_ns":${startNs},"end_ns":${endNs}${forced},"pid":${pid}}`,
      );
    }
    this.keepNotesFrom(cursor.at);
    this.pending = 0;
    if (this.meter) this.meter.drainLines(lines, this.originNs, pid);
    lines.push(JSON.stringify(this.statsRecord()));
    try {
      fs.appendFileSync(this.path, lines.join('\n') + '\n');
    } catch (err) {
      process.stderr.write(`gcbench node probe: cannot write ${this.path}: ${err.message}\n`);
      return this.written;
    }
    this.written += n;
    this.flushes++;
    return this.written;
  }

  // The exit hooks may fire one after another (stdin end, then exit): write again only if there is news.
  flushAtEnd() {
    const taken = this.observer.takeRecords();
    if (taken.length) this.record(taken);
    if (this.flushes === 0 || this.pending > 0 || (this.meter && this.meter.n > 0)) this.flush();
  }

  // Flush at the ends of the process's life; every hook is synchronous.
  installExitHooks() {
    process.on('exit', () => this.flushAtEnd());
    // GC entries wait in an unreferenced native immediate: when the loop runs dry, turn it once more
    // so that they reach the observer before 'exit'.
    let drained = false;
    process.on('beforeExit', () => {
      if (!drained) {
        drained = true;
        setImmediate(() => {});
      }
    });
    const onTerm = () => {
      this.flushAtEnd();
      if (process.listenerCount('SIGTERM') === 1) {
        // Nobody else handles SIGTERM: after one more loop turn (late GC entries), die of it as the
        // default action would have.
        process.removeListener('SIGTERM', onTerm);
        setImmediate(() => {
          this.flushAtEnd();
          process.kill(process.pid, 'SIGTERM');
        });
      }
    };
    process.on('SIGTERM', onTerm);
    try {
      // An 'end' listener does not start reading: stdin stays untouched until the server reads it.
      process.stdin.once('end', () => this.flushAtEnd());
    } catch {
      // no usable stdin (closed descriptor): exit and SIGTERM still flush
    }
    return this;
  }
}

// A timer on the main thread, re-armed with refresh() (no allocation per wake-up): how late it fires is
// how long the event loop could not run it. libuv timers count whole milliseconds from the loop's cached
// time, so the interval is rounded up to 1 ms and a wake-up can come up to 1 ms early (a hiccup can be
// under-reported by that much). perf_hooks' own event-loop-delay histogram runs beside it for the stats.
class HiccupMeter {
  constructor(intervalUs, floorUs) {
    this.intervalMs = Math.max(1, Math.round(intervalUs / 1000));
    this.floorMs = floorUs / 1000;
    this.due = new Float64Array(HICCUP_MAX_EVENTS); // performance.now() ms: when it should have fired
    this.woke = new Float64Array(HICCUP_MAX_EVENTS); // and when it did
    this.n = 0;
    this.clock = new Float64Array(2); // [0]: when the timer was armed; [1]: max lateness (ms)
    this.wakeups = 0;
    this.hiccups = 0;
    this.dropped = 0;
    this.eld = monitorEventLoopDelay({ resolution: this.intervalMs });
    this.eld.enable();
    this.clock[0] = performance.now();
    this.timer = setTimeout(() => this.tick(), this.intervalMs);
    this.timer.unref(); // never keeps the process alive
  }

  tick() {
    const woke = performance.now();
    const due = this.clock[0] + this.intervalMs;
    const late = woke - due;
    this.wakeups++;
    if (late > this.clock[1]) this.clock[1] = late;
    if (late > this.floorMs) {
      this.hiccups++;
      if (this.n < HICCUP_MAX_EVENTS) {
        this.due[this.n] = due;
        this.woke[this.n] = woke;
        this.n++;
      } else {
        this.dropped++;
      }
    }
    this.clock[0] = performance.now();
    this.timer.refresh();
  }

  reset() {
    this.wakeups = 0;
    this.hiccups = 0;
    this.dropped = 0;
    this.clock[1] = 0;
    this.eld.reset();
  }

  drainLines(lines, originNs, pid) {
    for (let i = 0; i < this.n; i++) {
      const dueNs = originNs + BigInt(Math.round(this.due[i] * 1e6));
      const wokeNs = originNs + BigInt(Math.round(this.woke[i] * 1e6));
      lines.push(
        `{"type":"hiccup","runtime":"node","kind":"hiccup","generation":-1,"start_ns":${dueNs},"end_ns":${wokeNs},"pid":${pid}}`,
      );
    }
    this.n = 0;
  }

  stats() {
    // the histogram holds whole timer intervals (ns): minus the resolution, what is left is lateness
    const resolutionNs = this.intervalMs * 1e6;
    const late = (v) => (Number.isFinite(v) ? Math.max(0, Math.round(v - resolutionNs)) : 0);
    const count = this.eld.count;
    return {
      hiccup_interval_us: this.intervalMs * 1000,
      hiccup_floor_us: Math.round(this.floorMs * 1000),
      hiccup_wakeups: this.wakeups,
      hiccup_count: this.hiccups,
      hiccup_max_late_ns: Math.max(0, Math.round(this.clock[1] * 1e6)),
      hiccup_dropped: this.dropped,
      eld_count: count,
      eld_p50_late_ns: count ? late(this.eld.percentile(50)) : 0,
      eld_p99_late_ns: count ? late(this.eld.percentile(99)) : 0,
      eld_max_late_ns: count ? late(this.eld.max) : 0,
    };
  }
}

const eventsPath = process.env.GCBENCH_EVENTS;
const probe = eventsPath ? new NodeGcProbe(eventsPath).installExitHooks().startMeterFromEnv() : null;

module.exports = {
  probe, // null when GCBENCH_EVENTS is unset
  flush: () => (probe ? probe.flush() : 0),
  resetCounts: () => probe && probe.resetCounts(),
  // for the oob collector: old-generation use around each of its gc() calls (a no-op without a probe)
  noteForced: (kind, startMs, endMs, oldBeforeBytes, oldAfterBytes) =>
    probe && probe.noteForced(kind, startMs, endMs, oldBeforeBytes, oldAfterBytes),
  NodeGcProbe,
};
