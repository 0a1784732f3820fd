// gcbench's built-in Java MCP tool server: JDK standard library only, contract in ../PROTOCOL.md.
//
// The JVM reports its own pauses: the adapter starts it with unified logging (-Xlog:safepoint,gc with the
// timenanos decorator, async) and turns that log into side-channel events after the server exits
// (gcbench/probes/jvm_log.py). The server itself writes only its stats record and the hiccup meter's events.
// Build: javac --release 17 *.java (Json.java, Http.java, Hiccup.java beside it), packed into a jar.

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryUsage;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

public final class Server {
    static final String PROTOCOL_VERSION = "2025-06-18";
    static final String[] WORK_ARGS = {"alloc_objects", "cyclic_fraction", "retain_objects", "retain_cap",
            "payload_bytes", "cpu_iters", "sleep_us", "retain_shape"};
    /** The heap shapes of ../PROTOCOL.md ("Heap shapes"); an absent retain_shape means the first. */
    static final String[] HEAP_SHAPES = {"lists", "records", "instances", "json"};
    static final String[] MODES = {"default", "g1", "parallel", "serial", "zgc", "shenandoah", "epsilon", "heap"};
    static final int MAX_LINE_BYTES = 256 << 20;
    static final String TOOLS_LIST = "{\"tools\":[{\"name\":\"work\",\"description\":\"Simulated tool: allocates, "
            + "retains, computes, sleeps and answers with a payload.\",\"inputSchema\":{\"type\":\"object\","
            + "\"properties\":{\"alloc_objects\":{\"type\":\"integer\",\"minimum\":0},"
            + "\"cyclic_fraction\":{\"type\":\"number\",\"minimum\":0},"
            + "\"retain_objects\":{\"type\":\"integer\",\"minimum\":0},"
            + "\"retain_cap\":{\"type\":\"integer\",\"minimum\":0},"
            + "\"payload_bytes\":{\"type\":\"integer\",\"minimum\":0},"
            + "\"cpu_iters\":{\"type\":\"integer\",\"minimum\":0},"
            + "\"sleep_us\":{\"type\":\"integer\",\"minimum\":0},"
            + "\"retain_shape\":{\"type\":\"string\",\"enum\":[\"lists\",\"records\",\"instances\",\"json\"]}},"
            + "\"additionalProperties\":false}}]}";
    // compressed oops and class pointers (heaps under 32 GiB): 12-byte header + two 4-byte references
    static final long NODE_BYTES = 24;

    /** The work tool's small heap object: two reference fields, like every other runtime's. */
    static final class Node {
        Node a, b;
    }

    // ---- heap shapes: what the start-up heap and the retained cache are made of ----
    // Record k of a batch (the start-up heap, or one call's retained objects) has an int, a short string, a
    // small list, a nested map and a reference to record (k - 1) / 2 of the same batch (null for the first), as
    // in every runtime. `records` is a HashMap<String, Object> (an ArrayList, a nested HashMap, boxed Longs:
    // what dynamic code and JSON-tree libraries build, default capacities), `instances` the record class Rec
    // (List.of and Map.of), `json` this server's parse of the document (LinkedHashMap, ArrayList, Json.Num).

    /** The `instances` shape. */
    record Rec(long id, String name, List<Long> tags, Map<String, Long> meta, Rec ref) {
    }

    static Map<String, Object> recordMap(long k, Map<String, Object> parent) {
        List<Object> tags = new ArrayList<>();
        tags.add(k);
        tags.add(k + 1);
        tags.add(k + 2);
        Map<String, Object> meta = new HashMap<>();
        meta.put("size", k);
        meta.put("score", k % 100);
        Map<String, Object> m = new HashMap<>();
        m.put("id", k);
        m.put("name", "rec-" + k);
        m.put("tags", tags);
        m.put("meta", meta);
        m.put("ref", parent);
        return m;
    }

    /** The `json` shape's document: a JSON array of `count` records; a reference is the other record's id. */
    static byte[] recordDoc(int count) {
        StringBuilder b = new StringBuilder(count * 96 + 2).append('[');
        for (long k = 0; k < count; k++) {
            if (k > 0) {
                b.append(',');
            }
            b.append("{\"id\":").append(k).append(",\"name\":\"rec-").append(k).append("\",\"tags\":[").append(k)
                    .append(',').append(k + 1).append(',').append(k + 2).append("],\"meta\":{\"size\":").append(k)
                    .append(",\"score\":").append(k % 100).append("},\"ref\":");
            if (k > 0) {
                b.append((k - 1) / 2);
            } else {
                b.append("null");
            }
            b.append('}');
        }
        return b.append(']').toString().getBytes(StandardCharsets.UTF_8);
    }

    /** `count` objects of a shape; `json` parses `doc` (recordDoc(count)), made here when null. */
    @SuppressWarnings("unchecked")
    static Object[] buildObjects(String shape, int count, byte[] doc) {
        Object[] out = new Object[count];
        switch (shape) {
            case "lists":
                for (int i = 0; i < count; i++) {
                    out[i] = new Node();
                }
                return out;
            case "records":
                for (int k = 0; k < count; k++) {
                    out[k] = recordMap(k, k > 0 ? (Map<String, Object>) out[(k - 1) / 2] : null);
                }
                return out;
            case "instances":
                for (int k = 0; k < count; k++) {
                    long v = k;
                    out[k] = new Rec(v, "rec-" + v, List.of(v, v + 1, v + 2), Map.of("size", v, "score", v % 100),
                            k > 0 ? (Rec) out[(k - 1) / 2] : null);
                }
                return out;
            case "json": {
                byte[] text = doc != null ? doc : recordDoc(count);
                try {
                    return ((List<Object>) Json.parse(text, 0, text.length)).toArray();
                } catch (Json.ParseError e) {
                    throw new IllegalStateException("the server's own document does not parse", e);
                }
            }
            default:
                throw new IllegalArgumentException("unknown heap shape " + shape);
        }
    }

    enum Reply { NONE, RESPONSE, INVALID }

    static final class ToolError extends Exception {
        private static final long serialVersionUID = 1L;

        ToolError(String message) {
            super(message, null, false, false);
        }
    }

    // Statics, so that nothing the work tool makes can be proved unused, kept off the heap (escape analysis
    // and scalar replacement) or optimised away.
    static Object[] startupHeap; // the shape's objects (json: the records of the parsed document)
    static Node[] callGarbage;
    static long cpuSink;

    final String eventsPath;
    final String gcMode;
    final Hiccup meter; // null unless GCBENCH_HICCUP_US is set
    // Concurrency (../PROTOCOL.md, "Concurrency"): each tools/call runs on a pool thread (stdio: fed by the
    // reader; HTTP: the HttpServer's executor), so the response being built is per thread, the retained cache
    // is guarded by its own monitor, and gcbench/measure and gcbench/flush wait until no call is in flight.
    final ThreadLocal<Out> outs = ThreadLocal.withInitial(Out::new);
    final Object idle = new Object(); // guards inflight
    int inflight; // tools/call started and not yet answered
    final ArrayList<Object> cache = new ArrayList<>();
    long cachePos;
    int docCount = -1; // the last `json` document retained, as text, as a tool receives it
    byte[] doc;
    final AtomicLong calls = new AtomicLong(); // tools/call since gcbench/measure
    long written; // side-channel events written in total
    volatile long measureNs = -1;
    long[] measureGcCounts = new long[0];
    long[] measureGcTimesMs = new long[0];
    volatile boolean exiting;

    Server(String eventsPath, String gcMode, Hiccup meter) {
        this.eventsPath = eventsPath;
        this.gcMode = gcMode;
        this.meter = meter;
    }

    /** A growable byte buffer: the response being built, reused. */
    static final class Out {
        byte[] buf = new byte[1 << 16];
        int len;

        void reset() {
            len = 0;
        }

        void ensure(int more) {
            if (len + more > buf.length) {
                buf = Arrays.copyOf(buf, Math.max(buf.length * 2, len + more));
            }
        }

        Out ascii(String s) {
            ensure(s.length());
            for (int i = 0; i < s.length(); i++) {
                buf[len++] = (byte) s.charAt(i);
            }
            return this;
        }

        Out utf8(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            return bytes(b, b.length);
        }

        Out bytes(byte[] b, int n) {
            ensure(n);
            System.arraycopy(b, 0, buf, len, n);
            len += n;
            return this;
        }

        byte[] copy() {
            return Arrays.copyOf(buf, len);
        }
    }

    // ---- JSON-RPC ----

    /** This thread's response buffer: what handle() leaves. */
    Out out() {
        return outs.get();
    }

    /** Handle one message (a line, or an HTTP body) on this thread; any response is left in out(). A tools/call
     *  counts as in flight while it runs; gcbench/measure and gcbench/flush first wait until none is. */
    Reply handle(byte[] data, int off, int len) {
        Object msg;
        try {
            msg = Json.parse(data, off, len);
        } catch (Json.ParseError e) {
            out().reset();
            error(null, -32700, "Parse error");
            return Reply.INVALID;
        }
        boolean call = isToolCall(msg);
        if (call) {
            callStarted();
        } else if (isControl(msg)) {
            waitIdle();
        }
        try {
            return handleMessage(msg);
        } finally {
            if (call) {
                callDone();
            }
        }
    }

    static boolean isToolCall(Object msg) {
        return msg instanceof Map && "tools/call".equals(((Map<?, ?>) msg).get("method"))
                && ((Map<?, ?>) msg).containsKey("id");
    }

    static boolean isControl(Object msg) {
        Object method = msg instanceof Map ? ((Map<?, ?>) msg).get("method") : null;
        return "gcbench/measure".equals(method) || "gcbench/flush".equals(method);
    }

    void callStarted() {
        synchronized (idle) {
            inflight++;
        }
    }

    void callDone() {
        synchronized (idle) {
            if (--inflight == 0) {
                idle.notifyAll();
            }
        }
    }

    void waitIdle() {
        synchronized (idle) {
            while (inflight > 0) {
                try {
                    idle.wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    /** Handle one parsed message; any response is left in out(). */
    Reply handleMessage(Object msg) {
        out().reset();
        Map<?, ?> obj = msg instanceof Map ? (Map<?, ?>) msg : null;
        Object id = obj == null ? null : obj.get("id");
        Object method = obj == null ? null : obj.get("method");
        if (obj == null || !"2.0".equals(obj.get("jsonrpc")) || !(method instanceof String)) {
            error(id, -32600, "Invalid Request");
            return Reply.INVALID;
        }
        if (!obj.containsKey("id")) {
            return Reply.NONE; // a notification
        }
        Object params = obj.get("params");
        Map<?, ?> p = params instanceof Map ? (Map<?, ?>) params : null;
        switch ((String) method) {
            case "tools/call":
                toolsCall(id, p);
                break;
            case "initialize": {
                Object requested = p == null ? null : p.get("protocolVersion");
                StringBuilder b = new StringBuilder("{\"protocolVersion\":");
                Json.writeString(b, requested instanceof String ? (String) requested : PROTOCOL_VERSION);
                b.append(",\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":\"gcbench-java\",\"version\":");
                Json.writeString(b, System.getProperty("java.runtime.version"));
                b.append("}}");
                result(id, b.toString());
                break;
            }
            case "ping":
                result(id, "{}");
                break;
            case "tools/list":
                result(id, TOOLS_LIST);
                break;
            case "gcbench/measure":
                markMeasure();
                result(id, "{}");
                break;
            case "gcbench/flush":
                result(id, "{\"events\":" + flush() + "}");
                break;
            default:
                error(id, -32601, "Method not found: " + method);
        }
        return Reply.RESPONSE;
    }

    void begin(Object id) {
        StringBuilder b = new StringBuilder("{\"jsonrpc\":\"2.0\",\"id\":");
        Json.write(b, id == null ? Json.NULL : id);
        out().utf8(b.toString());
    }

    void result(Object id, String raw) {
        begin(id);
        out().ascii(",\"result\":").utf8(raw).ascii("}");
    }

    void error(Object id, int code, String message) {
        begin(id);
        StringBuilder b = new StringBuilder(",\"error\":{\"code\":").append(code).append(",\"message\":");
        Json.writeString(b, message);
        out().utf8(b.append("}}").toString());
    }

    void toolsCall(Object id, Map<?, ?> params) {
        Object name = params == null ? null : params.get("name");
        if (!"work".equals(name)) {
            String shown;
            if (name instanceof String) {
                shown = (String) name;
            } else if (name == null) {
                shown = "None";
            } else {
                StringBuilder b = new StringBuilder();
                Json.write(b, name);
                shown = b.toString();
            }
            error(id, -32602, "Unknown tool: " + shown);
            return;
        }
        if (measureNs >= 0) {
            calls.incrementAndGet();
        }
        Object args = params.containsKey("arguments") ? params.get("arguments") : Map.of();
        byte[] text;
        try {
            text = work(parseWorkArgs(args));
        } catch (RuntimeException e) { // answered, as a pool thread of a real server would; the server goes on
            e.printStackTrace();
            out().reset();
            error(id, -32603, "Internal error: " + e);
            return;
        } catch (ToolError e) {
            begin(id);
            StringBuilder b = new StringBuilder(",\"result\":{\"content\":[{\"type\":\"text\",\"text\":");
            Json.writeString(b, e.getMessage());
            out().utf8(b.append("}],\"isError\":true}}").toString());
            return;
        }
        begin(id);
        out().ascii(",\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"");
        out().bytes(text, text.length); // only ASCII 'x': nothing to escape
        out().ascii("\"}],\"isError\":false}}");
    }

    // ---- the work tool ----

    static final class WorkArgs {
        long allocObjects, retainObjects, retainCap, payloadBytes, cpuIters, sleepUs;
        double cyclicFraction;
        String retainShape = HEAP_SHAPES[0];
    }

    static WorkArgs parseWorkArgs(Object raw) throws ToolError {
        if (!(raw instanceof Map)) {
            throw new ToolError("arguments must be an object");
        }
        Map<?, ?> m = (Map<?, ?>) raw;
        for (Object k : m.keySet()) {
            if (!Arrays.asList(WORK_ARGS).contains(k)) {
                throw new ToolError("unknown argument '" + k + "'");
            }
        }
        WorkArgs a = new WorkArgs();
        a.allocObjects = intArg(m, "alloc_objects");
        a.retainObjects = intArg(m, "retain_objects");
        a.retainCap = intArg(m, "retain_cap");
        a.payloadBytes = intArg(m, "payload_bytes");
        a.cpuIters = intArg(m, "cpu_iters");
        a.sleepUs = intArg(m, "sleep_us");
        Object shape = m.get("retain_shape");
        if (shape != null) {
            if (!(shape instanceof String) || !Arrays.asList(HEAP_SHAPES).contains(shape)) {
                throw new ToolError("argument 'retain_shape' must be one of " + String.join(", ", HEAP_SHAPES));
            }
            a.retainShape = (String) shape;
        }
        Object f = m.get("cyclic_fraction");
        if (f != null) {
            double v = f instanceof Json.Num ? Double.parseDouble(((Json.Num) f).text) : Double.NaN;
            if (!(v >= 0 && v <= 1)) {
                throw new ToolError("argument 'cyclic_fraction' must be a number from 0 to 1");
            }
            a.cyclicFraction = v;
        }
        return a;
    }

    /** A JSON integer >= 0 (1.0 and 1e3 are refused, as in Python and Rust); 0 when absent. */
    static long intArg(Map<?, ?> m, String name) throws ToolError {
        Object v = m.get(name);
        if (v == null) {
            return 0;
        }
        if (v instanceof Json.Num && ((Json.Num) v).isInteger()) {
            String text = ((Json.Num) v).text;
            if (text.equals("-0")) {
                return 0;
            }
            if (!text.startsWith("-")) {
                try {
                    return Long.parseLong(text);
                } catch (NumberFormatException e) {
                    throw new ToolError("argument '" + name + "' is too large");
                }
            }
        }
        throw new ToolError("argument '" + name + "' must be a non-negative integer");
    }

    /** One call's simulated work; returns the payload text.
     *  Order: allocate (with cycles) -> retain -> cpu -> sleep -> build payload -> drop the garbage. */
    byte[] work(WorkArgs a) throws ToolError {
        long maxHeap = Runtime.getRuntime().maxMemory();
        // an absurd request is a tool error, as in Rust's try_reserve (a real out-of-memory ends the JVM)
        if (a.allocObjects > Integer.MAX_VALUE - 8 || a.allocObjects * (NODE_BYTES + 4) > maxHeap) {
            throw new ToolError("cannot allocate " + a.allocObjects + " objects (the heap holds " + maxHeap
                    + " bytes)");
        }
        if (a.payloadBytes > Integer.MAX_VALUE - 64 || a.payloadBytes * 2 > maxHeap) {
            throw new ToolError("cannot build a payload of " + a.payloadBytes + " bytes");
        }
        int n = (int) a.allocObjects;
        int nCyclic = Math.min(n, (int) (n * a.cyclicFraction) & ~1); // pairs
        Node[] garbage = new Node[n];
        callGarbage = garbage; // published first: every object stored in it escapes (a racing call may overwrite
        // or clear it: escape analysis is decided when the code is compiled, the local keeps the objects alive)
        int i = 0;
        for (; i < nCyclic; i += 2) {
            Node x = new Node();
            Node y = new Node();
            x.a = y;
            y.a = x;
            garbage[i] = x;
            garbage[i + 1] = y;
        }
        for (; i < n; i++) {
            garbage[i] = new Node();
        }
        if (a.retainObjects > 0) {
            retain(a.retainObjects, a.retainCap, a.retainShape);
        }
        if (a.cpuIters > 0) {
            long x = cpuSink | 1;
            for (long k = 0; k < a.cpuIters; k++) {
                x ^= x << 13;
                x ^= x >>> 7; // logical shift: the same bits as the unsigned 64-bit loop elsewhere
                x ^= x << 17;
            }
            cpuSink = x;
        }
        if (a.sleepUs > 0) {
            sleepNs(a.sleepUs * 1000);
        }
        byte[] text = new byte[(int) a.payloadBytes];
        Arrays.fill(text, (byte) 'x');
        callGarbage = null;
        return text;
    }

    /** Block for ns nanoseconds. parkNanos has no millisecond rounding (Thread.sleep(0, ns) has, on 17)
     *  but may return early, hence the loop. */
    static void sleepNs(long ns) {
        long deadline = System.nanoTime() + ns;
        for (long left = ns; left > 0; left = deadline - System.nanoTime()) {
            LockSupport.parkNanos(left);
        }
    }

    /** Concurrent calls share the cache (and the json document): its monitor guards both. */
    void retain(long count, long capacity, String shape) throws ToolError {
        synchronized (cache) {
            retainLocked(count, capacity, shape);
        }
    }

    void retainLocked(long count, long capacity, String shape) throws ToolError {
        if (shape.equals("lists")) { // one object at a time, as before shapes existed
            for (long i = 0; i < count; i++) {
                keep(new Node(), capacity);
            }
            return;
        }
        if (count > Integer.MAX_VALUE - 8) {
            throw new ToolError("cannot retain " + count + " records at once");
        }
        byte[] text = null;
        if (shape.equals("json")) {
            if (docCount != count) {
                doc = recordDoc((int) count);
                docCount = (int) count;
            }
            text = doc;
        }
        for (Object obj : buildObjects(shape, (int) count, text)) {
            keep(obj, capacity);
        }
    }

    void keep(Object obj, long capacity) {
        if (capacity > 0 && cache.size() >= capacity) {
            cache.set((int) (cachePos % capacity), obj);
            cachePos++;
        } else {
            cache.add(obj);
        }
    }

    // ---- measurement, stats, side channel ----

    /** The warm-up is over: counters start again (MXBeans are read here and at flush only, never in a call). */
    void markMeasure() {
        measureNs = System.nanoTime();
        calls.set(0);
        if (meter != null) {
            meter.reset();
        }
        List<GarbageCollectorMXBean> beans = ManagementFactory.getGarbageCollectorMXBeans();
        measureGcCounts = new long[beans.size()];
        measureGcTimesMs = new long[beans.size()];
        for (int i = 0; i < beans.size(); i++) {
            measureGcCounts[i] = beans.get(i).getCollectionCount();
            measureGcTimesMs[i] = beans.get(i).getCollectionTime();
        }
    }

    String statsRecord() {
        StringBuilder b = new StringBuilder("{\"type\":\"stats\",\"runtime\":\"java\"");
        field(b, "java_version", System.getProperty("java.runtime.version"));
        field(b, "vm_name", System.getProperty("java.vm.name"));
        field(b, "gc_mode", gcMode);
        field(b, "jvm_args", String.join(" ", ManagementFactory.getRuntimeMXBean().getInputArguments()));
        List<GarbageCollectorMXBean> beans = ManagementFactory.getGarbageCollectorMXBeans();
        List<String> names = new ArrayList<>();
        for (int i = 0; i < beans.size(); i++) {
            GarbageCollectorMXBean bean = beans.get(i);
            names.add(bean.getName());
            // "G1 Young Generation" -> gc_bean_g1_young_generation_count; MXBean times are milliseconds
            String key = "gc_bean_" + bean.getName().toLowerCase().replaceAll("[^a-z0-9]+", "_");
            long count = bean.getCollectionCount();
            long timeMs = bean.getCollectionTime();
            b.append(",\"").append(key).append("_count\":").append(count);
            b.append(",\"").append(key).append("_time_ms\":").append(timeMs);
            if (i < measureGcCounts.length) {
                b.append(",\"").append(key).append("_count_measured\":").append(count - measureGcCounts[i]);
            }
        }
        field(b, "gc_beans", String.join(", ", names));
        MemoryUsage heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
        b.append(",\"heap_used_bytes\":").append(heap.getUsed());
        b.append(",\"heap_committed_bytes\":").append(heap.getCommitted());
        b.append(",\"heap_max_bytes\":").append(Runtime.getRuntime().maxMemory());
        b.append(",\"heap_objects\":").append(startupHeap == null ? 0 : startupHeap.length);
        b.append(",\"retained_objects\":").append(cache.size());
        b.append(",\"calls\":").append(calls.get());
        b.append(",\"measure_ns\":").append(measureNs);
        long[] mem = procMemoryKib();
        b.append(",\"rss_bytes\":").append(mem[0] * 1024);
        b.append(",\"max_rss_bytes\":").append(mem[1] * 1024);
        b.append(",\"pid\":").append(ProcessHandle.current().pid());
        if (meter != null) {
            meter.addStats(b);
        }
        return b.append('}').toString();
    }

    static void field(StringBuilder b, String key, String value) {
        b.append(",\"").append(key).append("\":");
        Json.writeString(b, value == null ? "" : value);
    }

    /** Resident and peak resident set size in KiB from /proc (0 where unavailable); read at flush only. */
    static long[] procMemoryKib() {
        long[] out = {0, 0};
        try {
            for (String line : Files.readAllLines(Paths.get("/proc/self/status"))) {
                String[] parts = line.split("\\s+");
                if (parts.length >= 2 && parts[0].equals("VmRSS:")) {
                    out[0] = Long.parseLong(parts[1]);
                } else if (parts.length >= 2 && parts[0].equals("VmHWM:")) {
                    out[1] = Long.parseLong(parts[1]);
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux: zeros
        }
        return out;
    }

    /** Write the buffered hiccup events and a stats record; the number of events written in total. */
    synchronized long flush() {
        if (eventsPath.isEmpty()) {
            return written;
        }
        StringBuilder b = new StringBuilder();
        long pid = ProcessHandle.current().pid();
        int n = meter == null ? 0 : meter.drainLines(b, pid);
        b.append(statsRecord()).append('\n');
        try {
            Files.write(Paths.get(eventsPath), b.toString().getBytes(StandardCharsets.UTF_8),
                    StandardOpenOption.CREATE, StandardOpenOption.APPEND, StandardOpenOption.WRITE);
            written += n;
        } catch (IOException e) {
            System.err.println("gcbench java server: cannot write " + eventsPath + ": " + e);
        }
        return written;
    }

    /** Flush and exit (stdin's EOF: every call in flight has been answered first). */
    void exit(int code) {
        synchronized (this) {
            exiting = true; // the shutdown hook must not wait for this lock (System.exit waits for hooks)
            flush();
            System.exit(code);
        }
    }

    // ---- stdio ----

    /** A reader (this thread) that runs each tools/call on a pool thread, answered in the order they finish
     *  (the client matches them by id); every other method runs here, in arrival order. */
    void serveStdio(OutputStream stdout) throws IOException {
        ExecutorService pool = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "gcbench-call");
            t.setDaemon(true);
            return t;
        });
        try {
            readLines(stdout, pool);
        } finally {
            waitIdle(); // EOF: every call in flight is answered before the server exits
            pool.shutdown();
        }
    }

    void readLines(OutputStream stdout, ExecutorService pool) throws IOException {
        InputStream in = new FileInputStream(FileDescriptor.in);
        byte[] buf = new byte[1 << 16];
        int start = 0;
        int end = 0;
        while (true) {
            int nl = -1;
            for (int i = start; i < end; i++) {
                if (buf[i] == '\n') {
                    nl = i;
                    break;
                }
            }
            if (nl < 0) {
                if (start > 0) { // move the partial line to the front
                    System.arraycopy(buf, start, buf, 0, end - start);
                    end -= start;
                    start = 0;
                }
                if (end == buf.length) {
                    if (buf.length >= MAX_LINE_BYTES) {
                        System.err.println("gcbench java server: a line longer than " + MAX_LINE_BYTES + " bytes");
                        return;
                    }
                    buf = Arrays.copyOf(buf, buf.length * 2);
                }
                int n = in.read(buf, end, buf.length - end);
                if (n < 0) {
                    return; // EOF: the harness asks the server to exit
                }
                end += n;
                continue;
            }
            int lineStart = start;
            start = nl + 1;
            if (blank(buf, lineStart, nl)) {
                continue;
            }
            Object msg;
            try {
                msg = Json.parse(buf, lineStart, nl - lineStart);
            } catch (Json.ParseError e) {
                msg = null;
            }
            if (msg != null && isToolCall(msg)) {
                callStarted();
                final Object request = msg;
                pool.execute(() -> {
                    try {
                        handleMessage(request);
                        writeLine(stdout, out());
                    } finally {
                        callDone();
                    }
                });
                continue;
            }
            if (msg != null && isControl(msg)) {
                waitIdle();
            }
            Reply kind;
            if (msg == null) {
                out().reset();
                error(null, -32700, "Parse error");
                kind = Reply.INVALID;
            } else {
                kind = handleMessage(msg);
            }
            if (kind != Reply.NONE && !writeLine(stdout, out())) {
                return; // the harness has gone
            }
        }
    }

    /** One response as one whole line: the writes of concurrent calls never interleave. */
    static boolean writeLine(OutputStream stdout, Out o) {
        o.ascii("\n");
        synchronized (stdout) {
            try {
                stdout.write(o.buf, 0, o.len);
                return true;
            } catch (IOException e) {
                return false;
            }
        }
    }

    static boolean blank(byte[] b, int from, int to) {
        for (int i = from; i < to; i++) {
            if (b[i] != ' ' && b[i] != '\t' && b[i] != '\r') {
                return false;
            }
        }
        return true;
    }

    // ---- start-up ----

    static long envLong(String name, long def) {
        String text = System.getenv().getOrDefault(name, "").trim();
        if (text.isEmpty()) {
            return def;
        }
        try {
            long v = Long.parseLong(text);
            if (v >= 0) {
                return v;
            }
        } catch (NumberFormatException e) {
            // below
        }
        fail(name + "=" + Json.quote(text) + " is not a non-negative integer");
        return 0;
    }

    static void fail(String message) {
        System.err.println("gcbench java server: " + message);
        System.exit(2);
    }

    /** The collector the JVM really runs, checked against the mode (an option from the environment or a
     *  JVM that picked something else would otherwise be measured under the wrong name). */
    static void checkCollector(String mode) {
        String name = mode.contains(":") ? mode.substring(0, mode.indexOf(':')) : mode;
        List<String> beans = new ArrayList<>();
        for (GarbageCollectorMXBean bean : ManagementFactory.getGarbageCollectorMXBeans()) {
            beans.add(bean.getName());
        }
        String expected;
        switch (name) {
            case "g1": expected = "G1 "; break;
            case "parallel": expected = "PS "; break;
            case "serial": expected = "Copy"; break;
            case "zgc": expected = "ZGC"; break;
            case "shenandoah": expected = "Shenandoah"; break;
            case "epsilon": expected = "Epsilon"; break;
            default: return; // default, heap: the JVM's own choice
        }
        boolean ok = beans.stream().anyMatch(b -> b.startsWith(expected));
        if (!ok) {
            fail("GC mode " + mode + " but the JVM runs the collectors " + beans
                    + " (a JVM option from the environment?)");
        }
    }

    public static void main(String[] argv) throws IOException {
        // stdout carries MCP only: anything printed by accident goes to stderr
        OutputStream stdout = new FileOutputStream(FileDescriptor.out);
        System.setOut(System.err);
        String mode = System.getenv().getOrDefault("GCBENCH_GC_MODE", "").trim();
        String modeName = mode.contains(":") ? mode.substring(0, mode.indexOf(':')) : mode;
        if (!mode.isEmpty() && !Arrays.asList(MODES).contains(modeName)) {
            fail("unknown GC mode " + Json.quote(mode) + " (" + String.join(", ", MODES) + ")");
        }
        checkCollector(mode);
        if (modeName.equals("epsilon")) { // say how much room the no-op collector has: it never frees
            System.err.println("gcbench java server: epsilon frees nothing; heap " + (Runtime.getRuntime().maxMemory() >> 20)
                    + " MiB (-Xmx) for everything this cell allocates");
        }
        String transport = System.getenv().getOrDefault("GCBENCH_TRANSPORT", "").trim();
        if (!transport.isEmpty() && !transport.equals("stdio") && !transport.equals("http")) {
            fail("unsupported transport " + Json.quote(transport) + " (stdio or http)");
        }
        long heapObjects = envLong("GCBENCH_HEAP_OBJECTS", 0);
        if (heapObjects > Integer.MAX_VALUE - 8) {
            fail("GCBENCH_HEAP_OBJECTS=" + heapObjects + " is more than a Java array holds");
        }
        long intervalUs = envLong("GCBENCH_HICCUP_US", 0);
        long floorUs = envLong("GCBENCH_HICCUP_FLOOR_US", 200);
        String heapShape = System.getenv().getOrDefault("GCBENCH_HEAP_SHAPE", "").trim();
        if (heapShape.isEmpty()) {
            heapShape = HEAP_SHAPES[0];
        }
        if (!Arrays.asList(HEAP_SHAPES).contains(heapShape)) {
            fail("unknown GCBENCH_HEAP_SHAPE " + Json.quote(heapShape) + " (one of " + String.join(", ", HEAP_SHAPES) + ")");
        }
        startupHeap = buildObjects(heapShape, (int) heapObjects, null);
        Hiccup meter = intervalUs > 0 ? new Hiccup(intervalUs * 1000, floorUs * 1000) : null;
        Server server = new Server(System.getenv().getOrDefault("GCBENCH_EVENTS", ""), mode, meter);
        if (meter != null) {
            meter.start(); // after the start-up heap exists
        }
        // SIGTERM/SIGINT: the JVM runs shutdown hooks, then exits (code 143/130); flush under the lock first
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            if (!server.exiting) {
                synchronized (server) {
                    server.flush();
                }
            }
        }, "gcbench-flush"));
        if (transport.equals("http")) {
            Http.serve(server, stdout);
        } else {
            server.serveStdio(stdout);
        }
        server.exit(0);
    }
}
