// The hiccup meter (jHiccup's idea): a thread that sleeps a fixed interval and records how late it woke.
//
// It is a Java thread, so every safepoint stops it: GC pauses, the time to reach them, and the JVM's other
// safepoints; plus the scheduler and the machine. It shares no lock with request handling (its own monitor
// guards only its buffer), so a call's own work does not delay it while a core is free. The loop allocates
// nothing: the buffer is a long[] that doubles when full, up to MAX_EVENTS, after which hiccups are counted.

import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLong;

final class Hiccup {
    static final int MAX_EVENTS = 1_000_000; // unflushed

    final long intervalNs;
    final long floorNs;
    final AtomicLong wakeups = new AtomicLong();
    final AtomicLong hiccups = new AtomicLong();
    final AtomicLong maxLateNs = new AtomicLong();
    final AtomicLong dropped = new AtomicLong();
    private long[] events = new long[2 * 1024]; // pairs: when it should have woken, when it woke
    private int count; // events in the buffer

    Hiccup(long intervalNs, long floorNs) {
        this.intervalNs = intervalNs;
        this.floorNs = floorNs;
    }

    void start() {
        Thread t = new Thread(this::run, "gcbench-hiccup");
        t.setDaemon(true);
        t.start();
    }

    private void run() {
        while (true) {
            long t0 = System.nanoTime(); // CLOCK_MONOTONIC on Linux
            long due = t0 + intervalNs;
            Server.sleepNs(intervalNs);
            long woke = System.nanoTime();
            wakeups.incrementAndGet();
            long late = woke - due;
            if (late > maxLateNs.get()) {
                maxLateNs.set(late); // only this thread raises it
            }
            if (late > floorNs) {
                hiccups.incrementAndGet();
                record(due, woke);
            }
        }
    }

    private synchronized void record(long due, long woke) {
        if (count >= MAX_EVENTS) {
            dropped.incrementAndGet();
            return;
        }
        if (2 * count + 2 > events.length) {
            events = Arrays.copyOf(events, Math.min(events.length * 2, 2 * MAX_EVENTS));
        }
        events[2 * count] = due;
        events[2 * count + 1] = woke;
        count++;
    }

    /** Counters start again (gcbench/measure); buffered events stay, the harness windows them by time. */
    void reset() {
        wakeups.set(0);
        hiccups.set(0);
        maxLateNs.set(0);
        dropped.set(0);
    }

    /** Move the buffered events to b as side-channel lines; returns how many. */
    synchronized int drainLines(StringBuilder b, long pid) {
        for (int i = 0; i < count; i++) {
            b.append("{\"type\":\"hiccup\",\"runtime\":\"java\",\"kind\":\"hiccup\",\"generation\":-1,\"start_ns\":")
                    .append(events[2 * i]).append(",\"end_ns\":").append(events[2 * i + 1])
                    .append(",\"pid\":").append(pid).append("}\n");
        }
        int n = count;
        count = 0;
        return n;
    }

    void addStats(StringBuilder b) {
        b.append(",\"hiccup_interval_us\":").append(intervalNs / 1000);
        b.append(",\"hiccup_floor_us\":").append(floorNs / 1000);
        b.append(",\"hiccup_wakeups\":").append(wakeups.get());
        b.append(",\"hiccup_count\":").append(hiccups.get());
        b.append(",\"hiccup_max_late_ns\":").append(maxLateNs.get());
        b.append(",\"hiccup_dropped\":").append(dropped.get());
    }
}
