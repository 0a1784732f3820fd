'use strict';
// The checks every built-in Node HTTP server makes before it reads a request: only POST /mcp, and a
// browser's Origin must be this machine's loopback (the DNS-rebinding guard of the MCP spec).

const ORIGIN_OK = /^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?$/;

// Answers 404/403 and returns false when the request must not reach the MCP handler.
function admitRequest(req, res) {
  const url = req.url || '';
  if (url !== '/mcp' && !url.startsWith('/mcp?')) {
    res.writeHead(404).end();
    return false;
  }
  const origin = req.headers.origin;
  if (origin !== undefined && !ORIGIN_OK.test(origin)) {
    res.writeHead(403).end();
    return false;
  }
  return true;
}

module.exports = { admitRequest };
