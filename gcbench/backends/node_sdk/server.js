'use strict';
// gcbench's Node.js MCP tool server on the official TypeScript SDK: McpServer with the `work` tool of
// ../PROTOCOL.md (../node/work.js), StdioServerTransport, or StreamableHTTPServerTransport in stateless
// JSON-response mode. The SDK is loaded from GCBENCH_NODE_SDK_DIR (the adapter's npm install).
//
// Where the SDK decides, its behaviour is kept, because that is what SDK-based servers do:
//   - arguments are validated by a zod schema first; a bad or unknown argument, and an unknown tool
//     name, come back as an isError result (not JSON-RPC -32602);
//   - over stdio a line that is not JSON is reported to onerror and gets no answer (no -32700);
//   - requests are dispatched through promises: a stdin chunk holding several requests has their
//     handlers started one after another in arrival order, and each response is written when its handler
//     resolves. The work tool's handler is async and sleep_us is a timer (../node/work.js), so calls that
//     sleep overlap, over stdio and over HTTP alike.
// gcbench/measure and gcbench/flush wait until no call is in flight; oob collects only then.
// gcbench/measure and gcbench/flush are registered as custom request handlers on the SDK's Server.

const path = require('path');
const http = require('http');
const { admitRequest } = require('../node/http_guard.js');
const { createRequire } = require('module');
const gcProbe = require('../../probes/node_gc.js');
const { HEAP_SHAPES, WorkState, CallTracker, work } = require('../node/work.js');
const { OutOfBandCollector } = require('../node/oob.js');

const KNOWN_MODES = /^(default|oob|semi:\d+|old:\d+)$/;

function die(message) {
  process.stderr.write(`gcbench node-sdk server: ${message}\n`);
  process.exit(2);
}

function loadSdk() {
  const dir = process.env.GCBENCH_NODE_SDK_DIR;
  if (!dir) die('GCBENCH_NODE_SDK_DIR is not set (the folder where npm installed the SDK)');
  const sdkRequire = createRequire(path.join(dir, 'package.json'));
  try {
    return {
      McpServer: sdkRequire('@modelcontextprotocol/sdk/server/mcp.js').McpServer,
      StdioServerTransport: sdkRequire('@modelcontextprotocol/sdk/server/stdio.js').StdioServerTransport,
      StreamableHTTPServerTransport: sdkRequire('@modelcontextprotocol/sdk/server/streamableHttp.js')
        .StreamableHTTPServerTransport,
      z: sdkRequire('zod').z,
    };
  } catch (err) {
    die(`cannot load the SDK from ${dir}: ${err.message}`);
  }
}

function workInputSchema(z) {
  const count = () => z.number().int().min(0).optional();
  return z.strictObject({
    alloc_objects: count(),
    cyclic_fraction: z.number().min(0).max(1).optional(),
    retain_objects: count(),
    retain_cap: count(),
    payload_bytes: count(),
    cpu_iters: count(),
    sleep_us: count(),
    retain_shape: z.enum(HEAP_SHAPES).optional(),
  });
}

const calls = new CallTracker(); // the work tool's calls in flight, across every McpServer

// A control method's answer once no call is in flight. A call ends when its handler resolves and the SDK
// sends its response a few promise steps later: one loop turn more lets it go first.
function whenIdle(answer) {
  const idle = calls.idle();
  return idle === null ? answer() : idle.then(() => new Promise((resolve) => setImmediate(resolve))).then(answer);
}

function collectIfIdle(oob) {
  if (calls.inFlight === 0) oob.afterResponse();
}

// One McpServer with the work tool and the gcbench control methods; `state` is shared by all of them.
function buildServer(sdk, state, inputSchema) {
  const { McpServer, z } = sdk;
  const server = new McpServer({ name: 'gcbench-node-sdk', version: process.version });
  server.registerTool(
    'work',
    {
      description: 'Simulated tool: allocates, retains, computes, sleeps and answers with a payload.',
      inputSchema,
    },
    async (args) => {
      calls.start();
      try {
        return { content: [{ type: 'text', text: await work(state, args) }], isError: false };
      } finally {
        calls.end();
      }
    },
  );
  const control = (method) => z.object({ method: z.literal(method), params: z.optional(z.object({}).passthrough()) });
  server.server.setRequestHandler(control('gcbench/measure'), () => whenIdle(() => {
    gcProbe.resetCounts();
    return {};
  }));
  server.server.setRequestHandler(control('gcbench/flush'), () => whenIdle(() => ({ events: gcProbe.flush() })));
  return server;
}

async function serveStdio(sdk, state, inputSchema, oob) {
  const server = buildServer(sdk, state, inputSchema);
  const transport = new sdk.StdioServerTransport();
  if (oob) {
    // send() has written the response when it returns; collect after the rest of this turn.
    const send = transport.send.bind(transport);
    transport.send = (message) => {
      const sent = send(message);
      if (message.id !== undefined && !('method' in message)) setImmediate(() => collectIfIdle(oob));
      return sent;
    };
  }
  await server.connect(transport);
  process.stdin.on('end', () => whenIdle(() => setImmediate(() => process.exit(0))));
}

function serveHttp(sdk, state, inputSchema, oob) {
  const httpServer = http.createServer({ noDelay: true }, async (req, res) => {
    if (!admitRequest(req, res)) return;
    if (oob) res.on('finish', () => collectIfIdle(oob));
    // Stateless mode: the SDK wants a fresh transport (and so server) for every request.
    const server = buildServer(sdk, state, inputSchema);
    const transport = new sdk.StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => {
      transport.close();
      server.close();
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(req, res);
    } catch (err) {
      process.stderr.write(`gcbench node-sdk server: ${err.stack || err}\n`);
      if (!res.headersSent) res.writeHead(500).end();
    }
  });
  httpServer.keepAliveTimeout = 0; // idle keep-alive connections stay open through any think time
  httpServer.listen(0, '127.0.0.1', () => {
    process.stdout.write(`GCBENCH_LISTENING ${httpServer.address().port}\n`);
  });
  process.stdin.on('end', () => whenIdle(() => setImmediate(() => process.exit(0))));
  process.stdin.resume(); // read (and drop) stdin only to see its EOF
}

function main() {
  const gcMode = process.env.GCBENCH_GC_MODE || 'default';
  if (!KNOWN_MODES.test(gcMode)) die(`unknown GC mode '${gcMode}'`);
  const sdk = loadSdk();
  const heapShape = process.env.GCBENCH_HEAP_SHAPE || HEAP_SHAPES[0];
  if (!HEAP_SHAPES.includes(heapShape)) die(`unknown GCBENCH_HEAP_SHAPE '${heapShape}' (one of ${HEAP_SHAPES.join(', ')})`);
  const state = new WorkState(parseInt(process.env.GCBENCH_HEAP_OBJECTS || '0', 10) || 0, heapShape);
  const oob = gcMode === 'oob' ? new OutOfBandCollector(gcProbe.noteForced) : null;
  const inputSchema = workInputSchema(sdk.z);
  const transport = process.env.GCBENCH_TRANSPORT || 'stdio';
  if (transport === 'stdio') {
    serveStdio(sdk, state, inputSchema, oob).catch((err) => die(err.stack || String(err)));
  } else if (transport === 'http') {
    serveHttp(sdk, state, inputSchema, oob);
  } else {
    die(`unsupported transport '${transport}'`);
  }
}

main();
