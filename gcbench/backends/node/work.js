'use strict';
// The `work` tool of ../PROTOCOL.md for Node.js, shared by the plain server (server.js) and the SDK
// server (../node_sdk/server.js). Plain JavaScript, no dependencies.

const WORK_ARGS = [
  'alloc_objects',
  'cyclic_fraction',
  'retain_objects',
  'retain_cap',
  'payload_bytes',
  'cpu_iters',
  'sleep_us',
  'retain_shape',
];
// The heap shapes of ../PROTOCOL.md ("Heap shapes"); an absent retain_shape means the first.
const HEAP_SHAPES = ['lists', 'records', 'instances', 'json'];

const WORK_TOOL = {
  name: 'work',
  description: 'Simulated tool: allocates, retains, computes, sleeps and answers with a payload.',
  inputSchema: {
    type: 'object',
    properties: Object.fromEntries(
      WORK_ARGS.map((name) => [
        name,
        name === 'retain_shape'
          ? { type: 'string', enum: HEAP_SHAPES }
          : { type: name === 'cyclic_fraction' ? 'number' : 'integer', minimum: 0 },
      ]),
    ),
    additionalProperties: false,
  },
};

const { performance } = require('perf_hooks');

class ToolArgumentError extends Error {}

// sleep_us is a timer, as Node does I/O waits: the event loop serves other requests meanwhile. libuv timers
// count whole milliseconds and can fire early (the loop's cached time), so the timer is re-armed until
// performance.now() (CLOCK_MONOTONIC) has passed the deadline: never shorter, up to about 1 ms longer.
function sleepFor(us) {
  const deadline = performance.now() + us / 1000;
  return new Promise((resolve) => {
    const check = () => {
      const leftMs = deadline - performance.now();
      if (leftMs <= 0) resolve();
      else setTimeout(check, Math.ceil(leftMs));
    };
    setTimeout(check, Math.ceil(us / 1000));
  });
}

// The tools/call requests in flight (a call is in flight from its start until its response is written):
// control methods wait for them, the oob collector runs only when there are none.
class CallTracker {
  constructor() {
    this.inFlight = 0;
    this.waiters = [];
  }

  start() {
    this.inFlight++;
  }

  end() {
    if (--this.inFlight === 0 && this.waiters.length) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  // null when no call is in flight, else a promise that resolves when none is.
  idle() {
    return this.inFlight === 0 ? null : new Promise((resolve) => this.waiters.push(resolve));
  }
}

// Record k of a batch (the start-up heap, or one call's retained objects): an int, a short string, a small
// list, a nested map, and a reference to record (k - 1) >> 1 of the same batch (null for the first), the
// same record in every runtime. `records` is an object literal, `instances` a class instance (V8 gives both
// a hidden class: in V8 the two differ little, which is what V8 does), `json` JSON.parse of the document.
class Record {
  constructor(id, name, tags, meta, ref) {
    this.id = id;
    this.name = name;
    this.tags = tags;
    this.meta = meta;
    this.ref = ref;
  }
}

// The `json` shape's document: a JSON array of `count` records; a reference is the other record's id.
function recordDoc(count) {
  const parts = new Array(count);
  for (let k = 0; k < count; k++) {
    const ref = k ? (k - 1) >> 1 : 'null';
    parts[k] = `{"id":${k},"name":"rec-${k}","tags":[${k},${k + 1},${k + 2}],"meta":{"size":${k},"score":${k % 100}},"ref":${ref}}`;
  }
  return '[' + parts.join(',') + ']';
}

// `count` objects of a shape, in an array; `json` parses `doc` (recordDoc(count)) when given.
function buildObjects(shape, count, doc) {
  if (shape === 'json') return JSON.parse(doc === undefined ? recordDoc(count) : doc);
  const out = new Array(count);
  if (shape === 'lists') {
    for (let i = 0; i < count; i++) out[i] = { a: i, b: null };
  } else if (shape === 'records') {
    for (let k = 0; k < count; k++) {
      out[k] = { id: k, name: 'rec-' + k, tags: [k, k + 1, k + 2], meta: { size: k, score: k % 100 }, ref: k ? out[(k - 1) >> 1] : null };
    }
  } else if (shape === 'instances') {
    for (let k = 0; k < count; k++) {
      out[k] = new Record(k, 'rec-' + k, [k, k + 1, k + 2], { size: k, score: k % 100 }, k ? out[(k - 1) >> 1] : null);
    }
  } else {
    throw new Error(`unknown heap shape '${shape}' (one of ${HEAP_SHAPES.join(', ')})`);
  }
  return out;
}

class WorkState {
  constructor(heapObjects = 0, heapShape = 'lists') {
    // The start-up heap: long-lived objects of the scenario's shape (throws for an unknown one).
    this.heap = buildObjects(heapShape, heapObjects);
    this.cache = [];
    this.cachePos = 0;
    this.docCount = -1; // the last `json` document retained, as text, as a tool receives it
    this.doc = '';
    // xorshift64 state as two unsigned 32-bit halves (see cpu())
    this.cpuHi = 0;
    this.cpuLo = 0;
  }

  retain(count, cap, shape = 'lists') {
    if (shape === 'lists') {
      // one object at a time, as before shapes existed
      for (let i = 0; i < count; i++) this.keep({ a: i, b: null }, cap);
      return;
    }
    if (shape === 'json' && this.docCount !== count) {
      this.doc = recordDoc(count);
      this.docCount = count;
    }
    const objs = buildObjects(shape, count, shape === 'json' ? this.doc : undefined);
    for (let i = 0; i < objs.length; i++) this.keep(objs[i], cap);
  }

  keep(obj, cap) {
    const cache = this.cache;
    if (cap && cache.length >= cap) {
      cache[this.cachePos % cap] = obj;
      this.cachePos++;
    } else {
      cache.push(obj);
    }
  }

  // xorshift64 (x ^= x << 13; x ^= x >> 7; x ^= x << 17) on two 32-bit halves: exact 64-bit results
  // with Smi/int32 arithmetic only (BigInt would allocate on every step and measure the allocator).
  cpu(iters) {
    let hi = this.cpuHi;
    let lo = (this.cpuLo | 1) >>> 0; // same seed as the other runtimes: sink | 1
    for (let i = 0; i < iters; i++) {
      // x ^= x << 13
      hi = (hi ^ ((hi << 13) | (lo >>> 19))) >>> 0;
      lo = (lo ^ (lo << 13)) >>> 0;
      // x ^= x >> 7
      lo = (lo ^ ((lo >>> 7) | (hi << 25))) >>> 0;
      hi = (hi ^ (hi >>> 7)) >>> 0;
      // x ^= x << 17
      hi = (hi ^ ((hi << 17) | (lo >>> 15))) >>> 0;
      lo = (lo ^ (lo << 17)) >>> 0;
    }
    this.cpuHi = hi;
    this.cpuLo = lo;
  }

  cpuSink() {
    return (BigInt(this.cpuHi) << 32n) | BigInt(this.cpuLo);
  }
}

// Validate the arguments object; returns the eight values in WORK_ARGS order or throws ToolArgumentError.
function parseWorkArgs(args) {
  if (args === undefined) args = {}; // absent: every argument defaults to 0
  if (args === null || typeof args !== 'object' || Array.isArray(args)) throw new ToolArgumentError('arguments must be an object');
  for (const name of Object.keys(args)) {
    if (!WORK_ARGS.includes(name)) throw new ToolArgumentError(`unknown argument '${name}'`);
  }
  const values = [];
  for (const name of WORK_ARGS) {
    const v = args[name] === undefined ? 0 : args[name];
    if (name === 'retain_shape') {
      const shape = args[name] === undefined ? HEAP_SHAPES[0] : args[name];
      if (!HEAP_SHAPES.includes(shape)) throw new ToolArgumentError(`argument '${name}' must be one of ${HEAP_SHAPES.join(', ')}`);
      values.push(shape);
      continue;
    }
    if (name === 'cyclic_fraction') {
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
        throw new ToolArgumentError(`argument '${name}' must be a number from 0 to 1`);
      }
    } else if (!Number.isSafeInteger(v) || v < 0) {
      throw new ToolArgumentError(`argument '${name}' must be a non-negative integer`);
    }
    values.push(v);
  }
  return values;
}

// One call's simulated work; returns the payload text, or a promise of it when the call sleeps (throws
// ToolArgumentError). Everything before the sleep runs at once, on the event loop.
function work(state, args) {
  const [alloc, cyclicFraction, retain, cap, payload, cpuIters, sleepUs, retainShape] = parseWorkArgs(args);
  let garbage = [];
  const nCyclic = Math.trunc(alloc * cyclicFraction) & ~1; // pairs
  for (let i = 0; i < nCyclic; i += 2) {
    const a = { a: null, b: null };
    const b = { a: a, b: null };
    a.a = b;
    garbage.push(a, b);
  }
  for (let i = nCyclic; i < alloc; i++) garbage.push({ a: null, b: null });
  if (retain) state.retain(retain, cap, retainShape);
  if (cpuIters) state.cpu(cpuIters);
  if (sleepUs) {
    return sleepFor(sleepUs).then(() => {
      const text = 'x'.repeat(payload);
      garbage = null; // the garbage stays reachable through the sleep, until the call ends
      return text;
    });
  }
  const text = 'x'.repeat(payload);
  garbage = null;
  return text;
}

module.exports = {
  WORK_ARGS, WORK_TOOL, HEAP_SHAPES, ToolArgumentError, WorkState, CallTracker, buildObjects, parseWorkArgs, work,
};
