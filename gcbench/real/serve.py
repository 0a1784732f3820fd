"""The loopback site of the real-fetch scenario: serves a folder on 127.0.0.1, standard library only.

    python serve.py FOLDER      prints `LISTENING <port>`, serves until its stdin ends (or SIGTERM)

It answers origin-form requests (GET /a.html) and absolute-form ones (GET http://host/a.html, what a client
sends to its proxy) alike, from FOLDER, whatever the host: mcp-server-fetch is started with it as its proxy.
"""

import http.server
import os
import sys
import threading
import urllib.parse

TYPES = {".html": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8"}


def main() -> None:
    root = os.path.realpath(sys.argv[1])

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path or "/")
            if path.endswith("/"):
                path += "index.html"
            full = os.path.realpath(os.path.join(root, path.lstrip("/")))
            body, status = b"not found\n", 404
            if full.startswith(root + os.sep) and os.path.isfile(full):
                with open(full, "rb") as f:
                    body, status = f.read(), 200
            self.send_response(status)
            self.send_header("Content-Type", TYPES.get(os.path.splitext(full)[1], "text/plain; charset=utf-8")
                             if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"LISTENING {server.server_address[1]}", flush=True)
    sys.stdin.read()  # until EOF: the parent asks it to stop by closing stdin
    server.shutdown()


if __name__ == "__main__":
    main()
