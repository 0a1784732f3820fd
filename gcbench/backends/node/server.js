'use strict';
// gcbench's built-in Node.js MCP tool server: plain Node 18+, no dependencies; contract in ../PROTOCOL.md.
//
// Requests are served the way Node serves them, on the event loop: each message is dispatched as it is
// read and answered synchronously unless it waits (a tools/call's sleep_us is a timer, so the calls that
// sleep overlap; its allocation and cpu_iters run on the loop and hold it). gcbench/measure and
// gcbench/flush wait until no call is in flight; oob collects only then. Responses go out with one
// fs.writeSync on fd 1 (process.stdout is never touched, so its stream machinery is not in the path), so
// each is one whole line.

const fs = require('fs');
const http = require('http');
const { admitRequest } = require('./http_guard.js');
const gcProbe = require('../../probes/node_gc.js');
const { WORK_TOOL, HEAP_SHAPES, ToolArgumentError, WorkState, CallTracker, work } = require('./work.js');
const { OutOfBandCollector } = require('./oob.js');

const PROTOCOL_VERSION = '2025-06-18';
// Modes whose knobs are node flags set by the adapter need nothing from the server itself.
const KNOWN_MODES = /^(default|oob|semi:\d+|old:\d+)$/;
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

function result(id, res) {
  return { jsonrpc: '2.0', id, result: res };
}

function error(id, code, message) {
  return { jsonrpc: '2.0', id, error: { code, message } };
}

class Server {
  constructor(gcMode, heapObjects, heapShape = HEAP_SHAPES[0]) {
    if (!KNOWN_MODES.test(gcMode)) throw new Error(`unknown GC mode '${gcMode}'`);
    if (!HEAP_SHAPES.includes(heapShape)) {
      throw new Error(`unknown GCBENCH_HEAP_SHAPE '${heapShape}' (one of ${HEAP_SHAPES.join(', ')})`);
    }
    this.gcMode = gcMode;
    this.state = new WorkState(heapObjects, heapShape);
    // after the start-up heap exists; the probe puts old-generation use around each gc() on its event
    this.oob = gcMode === 'oob' ? new OutOfBandCollector(gcProbe.noteForced) : null;
    this.calls = new CallTracker();
  }

  // Answer one parsed message: respond(reply) is called with the reply object, now or once the call's
  // sleep is over, then the oob collector runs if no call is in flight. A notification gets no respond:
  // false is returned, and the caller runs afterResponse() once it has acknowledged it.
  dispatch(msg, respond) {
    let reply;
    try {
      reply = this.handle(msg);
    } catch (err) {
      if (!(err instanceof ToolArgumentError)) throw err;
      reply = result(msg.id, { content: [{ type: 'text', text: err.message }], isError: true });
    }
    if (reply instanceof Promise) {
      const isCall = msg.method === 'tools/call'; // not a control method waiting for the calls
      if (isCall) this.calls.start();
      reply.then((r) => {
        respond(r);
        if (isCall) this.calls.end();
        this.afterResponse();
      });
      return true;
    }
    if (reply === null) return false;
    respond(reply);
    this.afterResponse();
    return true;
  }

  afterResponse() {
    if (this.oob && this.calls.inFlight === 0) this.oob.afterResponse();
  }

  // Answer one control method once no call is in flight.
  whenIdle(answer) {
    const idle = this.calls.idle();
    return idle === null ? answer() : idle.then(answer);
  }

  // One parsed message -> the reply object, a promise of it (a call that sleeps, a control method
  // waiting for the calls in flight), or null for a notification.
  handle(msg) {
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg) || msg.jsonrpc !== '2.0' || typeof msg.method !== 'string') {
      const id = msg !== null && typeof msg === 'object' && !Array.isArray(msg) && msg.id !== undefined ? msg.id : null;
      return error(id, -32600, 'Invalid Request');
    }
    if (!('id' in msg)) return null; // notification
    const id = msg.id;
    const params = msg.params || {};
    switch (msg.method) {
      case 'tools/call': {
        if (typeof params !== 'object' || params.name !== 'work') {
          return error(id, -32602, `Unknown tool: ${typeof params === 'object' ? params.name : params}`);
        }
        const text = work(this.state, params.arguments); // a ToolArgumentError is caught by dispatch
        const answer = (t) => result(id, { content: [{ type: 'text', text: t }], isError: false });
        return typeof text === 'string' ? answer(text) : text.then(answer);
      }
      case 'initialize': {
        const requested = typeof params === 'object' ? params.protocolVersion : undefined;
        return result(id, {
          protocolVersion: typeof requested === 'string' ? requested : PROTOCOL_VERSION,
          capabilities: { tools: {} },
          serverInfo: { name: 'gcbench-node', version: process.version },
        });
      }
      case 'ping':
        return result(id, {});
      case 'tools/list':
        return result(id, { tools: [WORK_TOOL] });
      case 'gcbench/measure':
        return this.whenIdle(() => {
          gcProbe.resetCounts();
          return result(id, {});
        });
      case 'gcbench/flush':
        return this.whenIdle(() => result(id, { events: gcProbe.flush() }));
      default:
        return error(id, -32601, `Method not found: ${msg.method}`);
    }
  }

  // One request's text: respond(JSON text of the reply), now or later, unless nothing is to be answered.
  dispatchText(text, respond) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      respond(JSON.stringify(error(null, -32700, 'Parse error')));
      this.afterResponse();
      return;
    }
    if (!this.dispatch(msg, (reply) => respond(JSON.stringify(reply)))) this.afterResponse();
  }
}

// Write all of `data` to a file descriptor, waiting out EAGAIN should someone have made it non-blocking.
function writeAll(fd, data) {
  const buf = Buffer.from(data, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (err) {
      if (err.code !== 'EAGAIN') throw err;
      Atomics.wait(sleepCell, 0, 0, 1);
    }
  }
}

function serveStdio(server) {
  let rest = null; // bytes after the last newline seen
  process.stdin.on('data', (chunk) => {
    const data = rest === null ? chunk : Buffer.concat([rest, chunk]);
    let start = 0;
    let nl;
    while ((nl = data.indexOf(10, start)) !== -1) {
      const text = data.toString('utf8', start, nl);
      start = nl + 1;
      if (text.trim() === '') continue;
      server.dispatchText(text, writeLine);
    }
    rest = start < data.length ? data.subarray(start) : null;
  });
  // After the calls in flight are answered, one more loop turn lets late GC entries reach the probe; its
  // exit hook writes them.
  process.stdin.on('end', () => server.whenIdle(() => setImmediate(() => process.exit(0))));
}

function writeLine(text) {
  writeAll(1, text + '\n');
}

function serveHttp(server) {
  const httpServer = http.createServer({ noDelay: true }, (req, res) => {
    if (!admitRequest(req, res)) return;
    if (req.method !== 'POST') {
      res.writeHead(405, { Allow: 'POST' }).end();
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const text = chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8');
      let msg;
      let status = 200;
      let reply;
      try {
        msg = JSON.parse(text);
      } catch {
        status = 400;
        reply = error(null, -32700, 'Parse error');
      }
      const send = (r) => {
        if (r.error !== undefined && r.error.code === -32600) status = 400;
        const body = Buffer.from(JSON.stringify(r), 'utf8');
        res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.length }).end(body);
      };
      if (status !== 200) {
        send(reply);
        server.afterResponse();
        return;
      }
      if (!server.dispatch(msg, send)) {
        res.writeHead(202).end(); // a notification
        server.afterResponse();
      }
    });
  });
  httpServer.keepAliveTimeout = 0; // idle keep-alive connections stay open through any think time
  httpServer.listen(0, '127.0.0.1', () => {
    writeAll(1, `GCBENCH_LISTENING ${httpServer.address().port}\n`);
  });
  process.stdin.on('end', () => server.whenIdle(() => setImmediate(() => process.exit(0))));
  process.stdin.resume(); // read (and drop) stdin only to see its EOF
}

function main() {
  let server;
  try {
    server = new Server(
      process.env.GCBENCH_GC_MODE || 'default',
      parseInt(process.env.GCBENCH_HEAP_OBJECTS || '0', 10) || 0,
      process.env.GCBENCH_HEAP_SHAPE || HEAP_SHAPES[0],
    );
  } catch (err) {
    process.stderr.write(`gcbench node server: ${err.message}\n`);
    process.exit(2);
  }
  const transport = process.env.GCBENCH_TRANSPORT || 'stdio';
  if (transport === 'stdio') serveStdio(server);
  else if (transport === 'http') serveHttp(server);
  else {
    process.stderr.write(`gcbench node server: unsupported transport '${transport}'\n`);
    process.exit(2);
  }
}

if (require.main === module) main();

module.exports = { Server };
