'use strict';
// GC mode `oob` for the Node.js servers: collect in the idle gap after each response, before V8 would
// have collected inside the next call. Needs `node --expose-gc`.
//
// V8 cannot switch its own GC off, so this pre-empts it rather than replacing it:
//   - minor (scavenge): V8 scavenges when the new space's current semi-space is full. After each
//     response, if the new-space bytes in use plus 1.5 x what the last call allocated there would pass
//     80% of its capacity, a minor GC runs now.
//   - major (mark-compact): V8 starts one when the old generation reaches an allocation limit that it
//     sets after each major GC from the live size (a growing factor between 1.1 and 4, not exposed).
//     Here the limit is max(2 x live, live + 16 MiB) after each out-of-band major GC, and a full GC runs
//     when the old generation in use plus its growth over the last call would pass it.
// A call that allocates more than the previous one can still trigger V8's own GC inside the call; the
// side channel marks the out-of-band collections with "forced": true, so both are visible.
//
// Which gc() call does what. Measured on node v20.20.2 (V8 11.3.244.8): 100k objects promoted to old
// space and dropped, then one call; the perf_hooks gc entries that started inside it, old_space used:
//   gc()                                        major (forced)   9.4 -> 2.6 MiB  (--trace-gc: Mark-Compact)
//   gc(false)                                   major (forced)   9.4 -> 2.6 MiB
//   gc(true), gc({})                            minor (forced)   9.3 -> 9.3 MiB
//   gc({type: 'major'})                         minor (forced)   9.3 -> 9.3 MiB  (--trace-gc: Scavenge)
//   gc({type: 'major', execution: 'sync'})      minor (forced)   9.3 -> 9.3 MiB
//   gc({type: 'major', execution: 'async'})     major (forced), from a later task; returns a promise
//   gc({type: 'minor'}) (also execution 'sync') minor (forced)   9.3 -> 9.3 MiB  (--trace-gc: Scavenge;
//                                               --minor-mc is off by default, so minor is the scavenger)
// Why (--expose-gc's option parser, V8 src/extensions/gc-extension.cc, three generations): the one in
// Node 20 recognises only type === 'minor' and execution === 'async'; any other object means "no
// options" and falls back to the legacy gc(truthy) = minor GC. A later one counts any defined property
// as an option (then {type: 'major'} is major); the newest parses 'major' by name but makes every
// non-object argument, gc(false) included, a minor GC. The forms that mean the same in all three:
// gc() with no argument = synchronous full mark-compact, gc({type: 'minor'}) = synchronous minor GC.

const v8 = require('v8');
const { performance } = require('perf_hooks');

const OLD_GROWTH_FACTOR = 2;
// Calls vary, and the new space's free bytes are spread over pages (not all usable): collect when 1.5
// times the last call's new-space allocation would take it past 80% (V8's own scavenge-task trigger).
const NEW_MARGIN = 1.5;
const NEW_TRIGGER_FRACTION = 0.8;
const OLD_MIN_HEADROOM_BYTES = 16 * 1024 * 1024;
const OLD_SPACES = new Set(['old_space', 'code_space', 'map_space', 'large_object_space', 'code_large_object_space']);

function sampleHeap() {
  let newUsed = 0;
  let newCapacity = 0;
  let oldUsed = 0;
  for (const space of v8.getHeapSpaceStatistics()) {
    if (space.space_name === 'new_space') {
      newUsed = space.space_used_size;
      newCapacity = space.space_used_size + space.space_available_size;
    } else if (OLD_SPACES.has(space.space_name)) {
      oldUsed += space.space_used_size;
    }
  }
  return { newUsed, newCapacity, oldUsed };
}

function oldLimitFor(liveBytes) {
  return Math.max(liveBytes * OLD_GROWTH_FACTOR, liveBytes + OLD_MIN_HEADROOM_BYTES);
}

class OutOfBandCollector {
  // onCollected(kind, startMs, endMs, oldBeforeBytes, oldAfterBytes) after each out-of-band GC: the
  // performance.now() times around the gc() call and the old generation in use before and after it
  // (the servers pass the probe's noteForced, which puts them on the forced gc event).
  constructor(onCollected = () => {}) {
    if (typeof globalThis.gc !== 'function') throw new Error('GC mode oob needs node --expose-gc');
    this.collect = globalThis.gc;
    this.onCollected = onCollected;
    const heap = sampleHeap();
    this.newUsedAfterGap = heap.newUsed;
    this.oldUsedAfterGap = heap.oldUsed;
    this.newPerCallBytes = 0;
    this.oldPerCallBytes = 0;
    this.oldLimitBytes = oldLimitFor(heap.oldUsed);
    this.minorRuns = 0;
    this.majorRuns = 0;
  }

  // Call after the response is written, before reading the next request.
  afterResponse() {
    let heap = sampleHeap();
    // Growth over the last call; a GC inside the call makes it negative: keep the previous estimate.
    const newGrowth = heap.newUsed - this.newUsedAfterGap;
    if (newGrowth > 0) this.newPerCallBytes = newGrowth;
    const oldGrowth = heap.oldUsed - this.oldUsedAfterGap;
    if (oldGrowth > 0) this.oldPerCallBytes = oldGrowth;
    else if (oldGrowth < 0) this.oldLimitBytes = oldLimitFor(heap.oldUsed); // V8 ran its own major GC
    if (heap.oldUsed + this.oldPerCallBytes >= this.oldLimitBytes) {
      heap = this.run('major', heap);
      this.majorRuns++;
      this.oldLimitBytes = oldLimitFor(heap.oldUsed);
    } else if (heap.newUsed + NEW_MARGIN * this.newPerCallBytes >= NEW_TRIGGER_FRACTION * heap.newCapacity) {
      heap = this.run('minor', heap);
      this.minorRuns++;
    }
    this.newUsedAfterGap = heap.newUsed;
    this.oldUsedAfterGap = heap.oldUsed;
  }

  // One collection now; returns the heap sampled after it.
  run(kind, before) {
    const startMs = performance.now();
    if (kind === 'major') this.collect(); // no argument: a full mark-compact on every V8 (see above)
    else this.collect({ type: 'minor' });
    const endMs = performance.now();
    const after = sampleHeap();
    this.onCollected(kind, startMs, endMs, before.oldUsed, after.oldUsed);
    return after;
  }
}

module.exports = { OutOfBandCollector };
