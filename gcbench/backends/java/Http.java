// Streamable HTTP for the Java server (stateless, JSON responses) on the JDK's com.sun.net.httpserver.
//
// Bound to 127.0.0.1 on an ephemeral port; prints "GCBENCH_LISTENING <port>" on stdout, then serves POST /mcp.
// Each exchange runs on a thread of a cached pool (a thread per request in flight, reused), and requests overlap:
// only the retained cache and the control methods synchronise (Server). The server exits when stdin reaches EOF.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

final class Http {
    static final int MAX_BODY_BYTES = 64 << 20;

    static void serve(Server server, OutputStream stdout) throws IOException {
        // Read once by the HTTP server's configuration class, so set before it is first used. Without nodelay
        // a small response can wait for the client's delayed ACK (Nagle); an idle keep-alive connection
        // would be closed after 30 s (the harness keeps one per agent for the whole cell).
        System.setProperty("sun.net.httpserver.nodelay", "true");
        System.setProperty("sun.net.httpserver.idleInterval", "86400");
        HttpServer http = HttpServer.create(new InetSocketAddress(InetAddress.getByName("127.0.0.1"), 0), 256);
        ExecutorService pool = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "gcbench-http");
            t.setDaemon(true);
            return t;
        });
        http.setExecutor(pool);
        http.createContext("/", exchange -> {
            try {
                exchange(server, exchange);
            } catch (IOException e) {
                // the client went away
            } finally {
                exchange.close();
            }
        });
        http.start();
        stdout.write(("GCBENCH_LISTENING " + http.getAddress().getPort() + "\n").getBytes(StandardCharsets.US_ASCII));
        stdout.flush();
        InputStream in = System.in;
        byte[] sink = new byte[4096];
        while (in.read(sink) >= 0) {
            // the harness closes stdin to stop the server
        }
        server.waitIdle(); // a call still running is answered before the server exits
    }

    static void exchange(Server server, HttpExchange ex) throws IOException {
        if (!ex.getRequestURI().getPath().equals("/mcp")) {
            plain(ex, 404, "not found");
            return;
        }
        if (!ex.getRequestMethod().equals("POST")) {
            ex.getResponseHeaders().set("Allow", "POST");
            plain(ex, 405, "method not allowed");
            return;
        }
        String origin = ex.getRequestHeaders().getFirst("Origin");
        if (origin != null && !loopbackOrigin(origin)) {
            plain(ex, 403, "forbidden origin");
            return;
        }
        byte[] body = readBody(ex.getRequestBody());
        if (body == null) {
            plain(ex, 413, "body too large");
            return;
        }
        byte[] reply;
        Server.Reply kind;
        kind = server.handle(body, 0, body.length); // on this exchange's pool thread, no lock around the tool
        reply = kind == Server.Reply.NONE ? null : server.out().copy();
        if (reply == null) {
            ex.sendResponseHeaders(202, -1); // a notification: no body
            return;
        }
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(kind == Server.Reply.INVALID ? 400 : 200, reply.length);
        try (OutputStream os = ex.getResponseBody()) {
            os.write(reply);
        }
    }

    static byte[] readBody(InputStream in) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        byte[] chunk = new byte[1 << 16];
        int n;
        while ((n = in.read(chunk)) >= 0) {
            b.write(chunk, 0, n);
            if (b.size() > MAX_BODY_BYTES) {
                return null;
            }
        }
        return b.toByteArray();
    }

    static void plain(HttpExchange ex, int status, String text) throws IOException {
        byte[] b = text.getBytes(StandardCharsets.US_ASCII);
        ex.getResponseHeaders().set("Content-Type", "text/plain");
        ex.sendResponseHeaders(status, b.length);
        try (OutputStream os = ex.getResponseBody()) {
            os.write(b);
        }
    }

    /** http://127.0.0.1, http://localhost and http://[::1], with or without a port. */
    static boolean loopbackOrigin(String origin) {
        for (String host : new String[] {"http://127.0.0.1", "http://localhost", "http://[::1]"}) {
            if (!origin.startsWith(host)) {
                continue;
            }
            String rest = origin.substring(host.length());
            if (rest.isEmpty()) {
                return true;
            }
            if (rest.startsWith(":") && rest.length() > 1 && rest.length() <= 6) {
                String port = rest.substring(1);
                if (port.chars().allMatch(Character::isDigit) && Integer.parseInt(port) <= 65535) {
                    return true;
                }
            }
        }
        return false;
    }
}
