//! The hiccup meter (jHiccup's idea): a thread that sleeps a fixed interval and records how late it woke.
//!
//! It shares nothing with request handling (its own lock, atomics for the counters), so what it sees is
//! the machine: scheduler delays, other processes, page faults, never this server's calls.
//! Settings: GCBENCH_HICCUP_US (wake interval, 0 or unset: off), GCBENCH_HICCUP_FLOOR_US (only wake-ups
//! later than this are recorded as events; default 200).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::monotonic_ns;

const DEFAULT_FLOOR_US: u64 = 200;
// Beyond this many buffered events (unflushed) hiccups are only counted: memory stays bounded.
const MAX_EVENTS: usize = 1_000_000;

pub struct Meter {
    interval_ns: u64,
    floor_ns: u64,
    wakeups: AtomicU64,
    hiccups: AtomicU64,
    max_late_ns: AtomicU64,
    dropped: AtomicU64,
    events: Mutex<Vec<(u64, u64)>>, // (when it should have woken, when it woke), CLOCK_MONOTONIC ns
}

fn env_u64(name: &str, default: u64) -> Result<u64, String> {
    let text = std::env::var(name).unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return Ok(default);
    }
    text.parse().map_err(|_| format!("{name}={text:?} is not a non-negative integer"))
}

impl Meter {
    /// The meter the environment asks for (None when GCBENCH_HICCUP_US is unset or 0).
    pub fn from_env() -> Result<Option<Arc<Meter>>, String> {
        let interval_us = env_u64("GCBENCH_HICCUP_US", 0)?;
        let floor_us = env_u64("GCBENCH_HICCUP_FLOOR_US", DEFAULT_FLOOR_US)?;
        if interval_us == 0 {
            return Ok(None);
        }
        Ok(Some(Arc::new(Meter {
            interval_ns: interval_us * 1000,
            floor_ns: floor_us * 1000,
            wakeups: AtomicU64::new(0),
            hiccups: AtomicU64::new(0),
            max_late_ns: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            events: Mutex::new(Vec::new()),
        })))
    }

    /// Start the meter thread (it runs until the process exits).
    pub fn start(self: &Arc<Meter>) {
        let meter = self.clone();
        thread::Builder::new()
            .name("gcbench-hiccup".into())
            .spawn(move || meter.run())
            .expect("cannot start the hiccup meter thread");
    }

    fn run(&self) {
        let interval = Duration::from_nanos(self.interval_ns);
        loop {
            let t0 = monotonic_ns();
            thread::sleep(interval);
            let woke = monotonic_ns();
            let due = t0 + self.interval_ns;
            self.wakeups.fetch_add(1, Relaxed);
            let late = woke.saturating_sub(due);
            self.max_late_ns.fetch_max(late, Relaxed);
            if late > self.floor_ns {
                self.hiccups.fetch_add(1, Relaxed);
                let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
                if events.len() < MAX_EVENTS {
                    events.push((due, woke));
                } else {
                    self.dropped.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// Counters start again (gcbench/measure); buffered events stay, the harness windows them by time.
    pub fn reset(&self) {
        self.wakeups.store(0, Relaxed);
        self.hiccups.store(0, Relaxed);
        self.max_late_ns.store(0, Relaxed);
        self.dropped.store(0, Relaxed);
    }

    /// Take the buffered events as side-channel JSON lines (without the newline).
    pub fn drain_lines(&self, pid: u32) -> Vec<String> {
        let events = std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()));
        events
            .into_iter()
            .map(|(due, woke)| {
                format!(
                    "{{\"type\":\"hiccup\",\"runtime\":\"rust\",\"kind\":\"hiccup\",\"generation\":-1,\"start_ns\":{due},\"end_ns\":{woke},\"pid\":{pid}}}"
                )
            })
            .collect()
    }

    /// The stats record's meter fields, each preceded by a comma.
    pub fn stats_fields(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            ",\"hiccup_interval_us\":{},\"hiccup_floor_us\":{},\"hiccup_wakeups\":{},\"hiccup_count\":{},\"hiccup_max_late_ns\":{},\"hiccup_dropped\":{}",
            self.interval_ns / 1000,
            self.floor_ns / 1000,
            self.wakeups.load(Relaxed),
            self.hiccups.load(Relaxed),
            self.max_late_ns.load(Relaxed),
            self.dropped.load(Relaxed)
        );
        s
    }
}
