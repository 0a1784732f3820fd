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
];

const WORK_TOOL = {
  name: 'work',
  description: 'Simulated tool: allocates, retains, computes, sleeps and answers with a payload.',
  inputSchema: {
    type: 'object',
    properties: Object.fromEntries(
      WORK_ARGS.map((name) => [name, { type: name === 'cyclic_fraction' ? 'number' : 'integer', minimum: 0 }]),
    ),
    additionalProperties: false,
  },
};

class ToolArgumentError extends Error {}

// Atomics.wait on a private buffer blocks the thread (and so the event loop) for the whole sleep.
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

class WorkState {
  constructor(heapObjects = 0) {
    // The start-up heap: long-lived objects of the same shape as the garbage.
    this.heap = new Array(heapObjects);
    for (let i = 0; i < heapObjects; i++) this.heap[i] = { a: i, b: null };
    this.cache = [];
    this.cachePos = 0;
    // xorshift64 state as two unsigned 32-bit halves (see cpu())
    this.cpuHi = 0;
    this.cpuLo = 0;
  }

  retain(count, cap) {
    const cache = this.cache;
    for (let i = 0; i < count; i++) {
      const obj = { a: i, b: null };
      if (cap && cache.length >= cap) {
        cache[this.cachePos % cap] = obj;
        this.cachePos++;
      } else {
        cache.push(obj);
      }
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

// Validate the arguments object; returns the seven values in WORK_ARGS order or throws ToolArgumentError.
function parseWorkArgs(args) {
  if (args === undefined) args = {}; // absent: every argument defaults to 0
  if (args === null || typeof args !== 'object' || Array.isArray(args)) throw new ToolArgumentError('arguments must be an object');
  for (const name of Object.keys(args)) {
    if (!WORK_ARGS.includes(name)) throw new ToolArgumentError(`unknown argument '${name}'`);
  }
  const values = [];
  for (const name of WORK_ARGS) {
    const v = args[name] === undefined ? 0 : args[name];
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

// One call's simulated work; returns the payload text (throws ToolArgumentError).
function work(state, args) {
  const [alloc, cyclicFraction, retain, cap, payload, cpuIters, sleepUs] = parseWorkArgs(args);
  let garbage = [];
  const nCyclic = Math.trunc(alloc * cyclicFraction) & ~1; // pairs
  for (let i = 0; i < nCyclic; i += 2) {
    const a = { a: null, b: null };
    const b = { a: a, b: null };
    a.a = b;
    garbage.push(a, b);
  }
  for (let i = nCyclic; i < alloc; i++) garbage.push({ a: null, b: null });
  if (retain) state.retain(retain, cap);
  if (cpuIters) state.cpu(cpuIters);
  if (sleepUs) Atomics.wait(sleepCell, 0, 0, sleepUs / 1000);
  const text = 'x'.repeat(payload);
  garbage = null;
  return text;
}

module.exports = { WORK_ARGS, WORK_TOOL, ToolArgumentError, WorkState, parseWorkArgs, work };
