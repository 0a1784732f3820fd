//! gcbench's built-in Rust MCP tool server: the no-GC control. Standard library only; contract in ../PROTOCOL.md.
//!
//! Memory is freed by ownership the moment the call's garbage goes out of scope, so every pause it
//! shows is not a GC pause. With GCBENCH_STALLS set it is also the calibration backend: it stalls for a
//! known time inside chosen calls and reports each stall like a GC event, as ground truth for the harness.
//!
//! With GCBENCH_HICCUP_US set a hiccup meter thread runs beside it (hiccup.rs). With GCBENCH_CONTROL=1
//! it serves nothing: it only runs the meter until stdin's EOF or SIGTERM, as the idle control process
//! that shows the machine's own noise next to a measured server.
//!
//! Build: rustc -O --edition 2021 main.rs (json.rs, http.rs and hiccup.rs sit beside it).

mod hiccup;
mod http;
mod json;

use std::cell::RefCell;
use std::collections::HashMap;
use std::env;
use std::fs::OpenOptions;
use std::hint::black_box;
use std::io::{self, BufRead, Write};
use std::os::raw::c_long;
use std::process;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use hiccup::Meter;
use json::Json;

const PROTOCOL_VERSION: &str = "2025-06-18";
const FLUSH_EVERY_EVENTS: usize = 10_000;
const WORK_ARGS: [&str; 8] = [
    "alloc_objects",
    "cyclic_fraction",
    "retain_objects",
    "retain_cap",
    "payload_bytes",
    "cpu_iters",
    "sleep_us",
    "retain_shape",
];
/// The heap shapes of ../PROTOCOL.md ("Heap shapes"); an absent retain_shape means the first.
const HEAP_SHAPES: [&str; 4] = ["lists", "records", "instances", "json"];
// Stamped in at build time by the adapter (rustc reads the environment through option_env!).
const RUSTC_VERSION: &str = match option_env!("GCBENCH_RUSTC_VERSION") {
    Some(v) => v,
    None => "unknown",
};

const TOOLS_LIST: &str = concat!(
    r#"{"tools":[{"name":"work","description":"Simulated tool: allocates, retains, computes, sleeps and answers with a payload.","#,
    r#""inputSchema":{"type":"object","properties":{"alloc_objects":{"type":"integer","minimum":0},"#,
    r#""cyclic_fraction":{"type":"number","minimum":0},"retain_objects":{"type":"integer","minimum":0},"#,
    r#""retain_cap":{"type":"integer","minimum":0},"payload_bytes":{"type":"integer","minimum":0},"#,
    r#""cpu_iters":{"type":"integer","minimum":0},"sleep_us":{"type":"integer","minimum":0},"#,
    r#""retain_shape":{"type":"string","enum":["lists","records","instances","json"]}},"#,
    r#""additionalProperties":false}}]}"#
);

// ---- clock: CLOCK_MONOTONIC through libc, which std links anyway ----

#[repr(C)]
struct Timespec {
    tv_sec: c_long,
    tv_nsec: c_long,
}

extern "C" {
    fn clock_gettime(clk: i32, ts: *mut Timespec) -> i32;
}

const CLOCK_MONOTONIC: i32 = 1;

pub fn monotonic_ns() -> u64 {
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// ---- signals: SIGTERM/SIGINT are blocked in every thread and taken by one sigwait thread ----

#[cfg(target_os = "linux")]
mod signals {
    #[repr(C)]
    pub struct SigSet([u64; 16]); // glibc and musl sigset_t: 1024 bits

    extern "C" {
        fn sigemptyset(set: *mut SigSet) -> i32;
        fn sigaddset(set: *mut SigSet, sig: i32) -> i32;
        fn pthread_sigmask(how: i32, set: *const SigSet, old: *mut SigSet) -> i32;
        fn sigwait(set: *const SigSet, sig: *mut i32) -> i32;
    }

    const SIG_BLOCK: i32 = 0;
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;

    /// Block SIGTERM and SIGINT in this thread and every thread it starts later (call before any spawn).
    pub fn block() -> SigSet {
        let mut set = SigSet([0; 16]);
        // SAFETY: set is a valid sigset_t-sized buffer; these calls only fill it and change this thread's mask.
        unsafe {
            sigemptyset(&mut set);
            sigaddset(&mut set, SIGTERM);
            sigaddset(&mut set, SIGINT);
            pthread_sigmask(SIG_BLOCK, &set, std::ptr::null_mut());
        }
        set
    }

    /// Wait for one of the blocked signals, as ordinary code (so it may lock and write files).
    pub fn wait(set: &SigSet) {
        let mut sig = 0;
        // SAFETY: set was filled by block(); sig is writable.
        while unsafe { sigwait(set, &mut sig) } != 0 {}
    }
}

#[cfg(not(target_os = "linux"))]
mod signals {
    pub struct SigSet;
    pub fn block() -> SigSet {
        SigSet
    }
    pub fn wait(_: &SigSet) {
        loop {
            std::thread::park(); // default signal handling elsewhere: the process just dies
        }
    }
}

// ---- the objects the work tool allocates: two reference fields each ----

#[allow(dead_code)] // the fields exist to give the object its shape; nothing reads them
struct Node {
    a: Option<Box<Node>>,
    b: Option<Box<Node>>,
}

fn node() -> Box<Node> {
    Box::new(Node { a: None, b: None })
}

/// One half of a cyclic pair. A Box cannot form a cycle, so pairs are reference counted and the
/// cycle is broken by hand at the end of the call (what a Rust program must do, and pays for).
#[allow(dead_code)]
struct PairNode {
    a: RefCell<Option<Rc<PairNode>>>,
    b: RefCell<Option<Rc<PairNode>>>,
}

fn pair_node() -> Rc<PairNode> {
    Rc::new(PairNode {
        a: RefCell::new(None),
        b: RefCell::new(None),
    })
}

// ---- heap shapes: what the start-up heap and the retained cache are made of ----
//
// Record k of a batch (the start-up heap, or one call's retained objects) has an int, a short string, a
// small list, a nested map and a reference to record (k - 1) / 2 of the same batch (none for the first),
// as in every runtime. There is no collector here: the shapes exist so that the no-GC control allocates,
// holds and frees the same objects as the others. References are Arc (the retained cache is shared by the
// request threads, so Rc is not allowed); a tree, so dropping one never recurses deep.

/// A field of a `records` record: the dynamic value a map-of-anything holds.
#[allow(dead_code)] // the fields exist to give the record its shape; nothing reads them
enum Value {
    Int(i64),
    Str(String),
    List(Vec<Value>),
    Map(HashMap<&'static str, Value>),
    Ref(Option<Arc<RecordMap>>),
}

/// `records`: the record as a map (literal keys, as in the other runtimes' maps and dicts).
struct RecordMap(#[allow(dead_code)] HashMap<&'static str, Value>);

/// `instances`: the record as a struct.
#[allow(dead_code)]
struct Record {
    id: i64,
    name: String,
    tags: Vec<i64>,
    meta: HashMap<&'static str, i64>,
    next: Option<Arc<Record>>,
}

/// One retained object, whatever its shape (`json`: one record of the parsed document).
#[allow(dead_code)]
enum Obj {
    Node(Box<Node>),
    Record(Arc<RecordMap>),
    Instance(Arc<Record>),
    Json(Json),
}

/// The start-up heap (`json`: the whole parsed document, an array of records).
#[allow(dead_code, clippy::vec_box)]
enum Heap {
    Lists(Vec<Box<Node>>),
    Records(Vec<Arc<RecordMap>>),
    Instances(Vec<Arc<Record>>),
    Json(Json),
}

fn record_map(k: u64, parent: Option<&Arc<RecordMap>>) -> Arc<RecordMap> {
    let k = k as i64;
    let mut meta = HashMap::with_capacity(2);
    meta.insert("size", Value::Int(k));
    meta.insert("score", Value::Int(k % 100));
    let mut m = HashMap::with_capacity(5);
    m.insert("id", Value::Int(k));
    m.insert("name", Value::Str(format!("rec-{k}")));
    m.insert("tags", Value::List(vec![Value::Int(k), Value::Int(k + 1), Value::Int(k + 2)]));
    m.insert("meta", Value::Map(meta));
    m.insert("ref", Value::Ref(parent.cloned()));
    Arc::new(RecordMap(m))
}

fn record(k: u64, parent: Option<&Arc<Record>>) -> Arc<Record> {
    let k = k as i64;
    let mut meta = HashMap::with_capacity(2);
    meta.insert("size", k);
    meta.insert("score", k % 100);
    Arc::new(Record { id: k, name: format!("rec-{k}"), tags: vec![k, k + 1, k + 2], meta, next: parent.cloned() })
}

/// The `json` shape's document: a JSON array of `count` records; a reference is the other record's id.
fn record_doc(count: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(count as usize * 96 + 2);
    b.push(b'[');
    for k in 0..count {
        if k > 0 {
            b.push(b',');
        }
        let rf = if k > 0 { ((k - 1) / 2).to_string() } else { "null".to_string() };
        let _ = write!(
            b,
            r#"{{"id":{k},"name":"rec-{k}","tags":[{k},{},{}],"meta":{{"size":{k},"score":{}}},"ref":{rf}}}"#,
            k + 1,
            k + 2,
            k % 100
        );
    }
    b.push(b']');
    b
}

fn build_heap(shape: &str, count: u64) -> Heap {
    match shape {
        "records" => {
            let mut out: Vec<Arc<RecordMap>> = Vec::with_capacity(count as usize);
            for k in 0..count {
                let r = record_map(k, if k > 0 { Some(&out[((k - 1) / 2) as usize]) } else { None });
                out.push(r);
            }
            Heap::Records(out)
        }
        "instances" => {
            let mut out: Vec<Arc<Record>> = Vec::with_capacity(count as usize);
            for k in 0..count {
                let r = record(k, if k > 0 { Some(&out[((k - 1) / 2) as usize]) } else { None });
                out.push(r);
            }
            Heap::Instances(out)
        }
        "json" => Heap::Json(json::parse(&record_doc(count)).unwrap_or(Json::Null)),
        _ => Heap::Lists((0..count).map(|_| node()).collect()),
    }
}

impl Heap {
    fn len(&self) -> usize {
        match self {
            Heap::Lists(v) => v.len(),
            Heap::Records(v) => v.len(),
            Heap::Instances(v) => v.len(),
            Heap::Json(Json::Arr(v)) => v.len(),
            Heap::Json(_) => 0,
        }
    }
}

// ---- configuration from the environment ----

#[derive(Clone, Copy, PartialEq)]
enum StallMode {
    Busy,
    Sleep,
}

struct Config {
    events_path: Option<String>,
    heap_objects: u64,
    heap_shape: String,
    http: bool,
    stalls: HashMap<u64, u64>, // call index (from gcbench/measure) -> stall microseconds
    stall_mode: StallMode,
    meter: Option<Arc<Meter>>,
    control: bool, // GCBENCH_CONTROL=1: no MCP, the meter only
}

fn env_var(name: &str) -> String {
    env::var(name).unwrap_or_default().trim().to_string()
}

impl Config {
    fn from_env() -> Result<Config, String> {
        let events = env_var("GCBENCH_EVENTS");
        let heap = env_var("GCBENCH_HEAP_OBJECTS");
        let heap_objects = if heap.is_empty() {
            0
        } else {
            heap.parse()
                .map_err(|_| format!("GCBENCH_HEAP_OBJECTS={heap:?} is not a non-negative integer"))?
        };
        let heap_shape = match env_var("GCBENCH_HEAP_SHAPE").as_str() {
            "" => HEAP_SHAPES[0].to_string(),
            s if HEAP_SHAPES.contains(&s) => s.to_string(),
            other => {
                return Err(format!("unknown GCBENCH_HEAP_SHAPE {other:?} (one of {})", HEAP_SHAPES.join(", ")))
            }
        };
        let mode = env_var("GCBENCH_GC_MODE");
        if !mode.is_empty() && mode != "default" {
            return Err(format!(
                "GC mode {mode:?}: Rust has no garbage collector: only 'default' applies (it is the no-GC control)"
            ));
        }
        let http = match env_var("GCBENCH_TRANSPORT").as_str() {
            "" | "stdio" => false,
            "http" => true,
            other => return Err(format!("unknown GCBENCH_TRANSPORT {other:?} (stdio or http)")),
        };
        let stall_mode = match env_var("GCBENCH_STALL_MODE").as_str() {
            "" | "busy" => StallMode::Busy,
            "sleep" => StallMode::Sleep,
            other => return Err(format!("unknown GCBENCH_STALL_MODE {other:?} (busy or sleep)")),
        };
        let meter = Meter::from_env()?;
        let control = match env_var("GCBENCH_CONTROL").as_str() {
            "" | "0" => false,
            "1" => true,
            other => return Err(format!("GCBENCH_CONTROL={other:?}: expected 0 or 1")),
        };
        if control && meter.is_none() {
            return Err("GCBENCH_CONTROL=1 needs the hiccup meter: set GCBENCH_HICCUP_US".to_string());
        }
        Ok(Config {
            events_path: if events.is_empty() { None } else { Some(events) },
            heap_objects,
            heap_shape,
            http,
            stalls: parse_stalls(&env_var("GCBENCH_STALLS"))?,
            stall_mode,
            meter,
            control,
        })
    }
}

/// "i:us,i:us,..." -> {call index: microseconds}.
fn parse_stalls(text: &str) -> Result<HashMap<u64, u64>, String> {
    let mut stalls = HashMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parsed = item
            .split_once(':')
            .and_then(|(i, us)| Some((i.trim().parse().ok()?, us.trim().parse().ok()?)));
        let (index, us): (u64, u64) =
            parsed.ok_or_else(|| format!("GCBENCH_STALLS item {item:?} is not call_index:microseconds"))?;
        if stalls.insert(index, us).is_some() {
            return Err(format!("GCBENCH_STALLS names call index {index} twice"));
        }
    }
    Ok(stalls)
}

// ---- the side channel: JSON lines buffered in memory, appended to the file on flush ----

struct SideChannel {
    path: Option<String>,
    buf: Vec<u8>,
    pending: usize,
    written: u64,
}

impl SideChannel {
    fn push(&mut self, line: &[u8]) {
        if self.path.is_none() {
            return;
        }
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        self.pending += 1;
        if self.pending >= FLUSH_EVERY_EVENTS {
            self.write(None);
        }
    }

    /// Append the buffered events (and a stats line) to the file; the total written so far.
    fn write(&mut self, stats: Option<&[u8]>) -> u64 {
        let Some(path) = &self.path else { return self.written };
        if let Some(line) = stats {
            self.buf.extend_from_slice(line);
            self.buf.push(b'\n');
        }
        if !self.buf.is_empty() {
            let result = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(&self.buf));
            if let Err(e) = result {
                eprintln!("gcbench rust server: cannot write {path}: {e}");
            }
        }
        self.written += self.pending as u64;
        self.pending = 0;
        self.buf.clear();
        self.written
    }
}

// ---- the server state and the work tool ----

struct WorkArgs {
    alloc_objects: u64,
    cyclic_fraction: f64,
    retain_objects: u64,
    retain_cap: u64,
    payload_bytes: u64,
    cpu_iters: u64,
    sleep_us: u64,
    retain_shape: &'static str,
}

/// What a message got: nothing (a notification), a response, or a JSON-RPC error for a message that is
/// not a valid request (HTTP answers those with 400, as the MCP transport asks).
#[derive(PartialEq)]
pub enum Reply {
    None,
    Response,
    Invalid,
}

/// How a request holds the gate while it is answered.
#[derive(Clone, Copy, PartialEq)]
pub enum Access {
    Free,      // touches no shared state: initialize, ping, tools/list, errors, notifications
    Call,      // tools/call: alongside any number of other calls
    Exclusive, // gcbench/measure, gcbench/flush, the exit: waits for the calls in flight, and they for it
}

/// A read-write gate whose guard any thread may hold (std's RwLock guards cannot cross threads or be
/// taken by one thread for another): calls share it, control methods hold it alone. Writers first: once
/// a control method waits, new calls wait behind it.
pub struct Gate {
    state: Mutex<(u64, bool)>, // calls in flight, a control method waiting or running
    changed: Condvar,
}

pub struct GateGuard<'a> {
    gate: &'a Gate,
    access: Access,
}

impl Gate {
    pub fn enter(&self, access: Access) -> GateGuard<'_> {
        let mut st = lock(&self.state);
        let wait = |st| self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        match access {
            Access::Free => {}
            Access::Call => {
                while st.1 {
                    st = wait(st);
                }
                st.0 += 1;
            }
            Access::Exclusive => {
                while st.1 {
                    st = wait(st);
                }
                st.1 = true;
                while st.0 > 0 {
                    st = wait(st);
                }
            }
        }
        GateGuard { gate: self, access }
    }
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.gate.state);
        match self.access {
            Access::Free => return,
            Access::Call => st.0 -= 1,
            Access::Exclusive => st.1 = false,
        }
        self.gate.changed.notify_all();
    }
}

/// The long-lived cache (retain_objects) and the last `json` document retained (records, text), as a
/// tool receives it; the one lock a call takes, only to add its objects.
struct Cache {
    objs: Vec<Obj>,
    pos: u64,
    doc: (u64, Arc<Vec<u8>>),
}

impl Cache {
    fn keep(&mut self, obj: Obj, cap: u64) {
        if cap > 0 && self.objs.len() as u64 >= cap {
            let slot = (self.pos % cap) as usize;
            self.objs[slot] = obj; // the old object is freed right here (unless a newer record refers to it)
            self.pos += 1;
        } else {
            self.objs.push(obj);
        }
    }
}

/// Shared by every request thread: the start-up heap and the settings are read-only, the cache and the
/// side channel have a lock each, the counters are atomics.
pub struct Server {
    heap: Heap, // the start-up heap (live for the whole run)
    cache: Mutex<Cache>,
    cpu_sink: AtomicU64,
    side: Mutex<SideChannel>,
    stalls: HashMap<u64, u64>,
    stall_mode: StallMode,
    measuring: AtomicBool,
    calls: AtomicU64, // tools/call requests since gcbench/measure: the stall plan's index
    stalls_done: AtomicU64,
    meter: Option<Arc<Meter>>,
    control: bool,
    pub gate: Gate,
}

impl Server {
    fn new(config: &Config) -> Server {
        let heap = build_heap(&config.heap_shape, config.heap_objects);
        Server {
            heap,
            cache: Mutex::new(Cache { objs: Vec::new(), pos: 0, doc: (u64::MAX, Arc::new(Vec::new())) }),
            cpu_sink: AtomicU64::new(0),
            side: Mutex::new(SideChannel {
                path: config.events_path.clone(),
                buf: Vec::new(),
                pending: 0,
                written: 0,
            }),
            stalls: config.stalls.clone(),
            stall_mode: config.stall_mode,
            measuring: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            stalls_done: AtomicU64::new(0),
            meter: config.meter.clone(),
            control: config.control,
            gate: Gate { state: Mutex::new((0, false)), changed: Condvar::new() },
        }
    }

    /// Handle one message (one HTTP body) under the gate; any response goes to `out`.
    pub fn handle(&self, line: &[u8], out: &mut Vec<u8>) -> Reply {
        let msg = json::parse(line);
        let _turn = self.gate.enter(access_of(&msg));
        self.answer(msg, out)
    }

    /// Answer a parsed message (Err: not JSON); the caller holds the gate as access_of says.
    pub fn answer(&self, msg: Result<Json, ()>, out: &mut Vec<u8>) -> Reply {
        let msg = match msg {
            Ok(m) => m,
            Err(()) => {
                error(out, None, -32700, "Parse error");
                return Reply::Invalid;
            }
        };
        let id = msg.get("id");
        let method = match (&msg, msg.get("jsonrpc").and_then(Json::as_str), msg.get("method")) {
            (Json::Obj(_), Some("2.0"), Some(Json::Str(m))) => m.as_str(),
            _ => {
                error(out, id, -32600, "Invalid Request");
                return Reply::Invalid;
            }
        };
        let Some(id) = id else { return Reply::None }; // a notification
        let params = msg.get("params");
        match method {
            "tools/call" => self.tools_call(id, params, out),
            "initialize" => {
                let requested = params.and_then(|p| p.get("protocolVersion")).and_then(Json::as_str);
                begin(out, Some(id));
                out.extend_from_slice(b",\"result\":{\"protocolVersion\":");
                json::write_str(out, requested.unwrap_or(PROTOCOL_VERSION));
                out.extend_from_slice(
                    b",\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":\"gcbench-rust\",\"version\":",
                );
                json::write_str(out, RUSTC_VERSION);
                out.extend_from_slice(b"}}}");
            }
            "ping" => result(out, id, b"{}"),
            "tools/list" => result(out, id, TOOLS_LIST.as_bytes()),
            "gcbench/measure" => {
                self.calls.store(0, Relaxed);
                self.stalls_done.store(0, Relaxed);
                self.measuring.store(true, Relaxed);
                if let Some(meter) = &self.meter {
                    meter.reset();
                }
                result(out, id, b"{}");
            }
            "gcbench/flush" => {
                let written = self.flush();
                result(out, id, format!("{{\"events\":{written}}}").as_bytes());
            }
            _ => error(out, Some(id), -32601, &format!("Method not found: {method}")),
        }
        Reply::Response
    }

    fn tools_call(&self, id: &Json, params: Option<&Json>, out: &mut Vec<u8>) {
        if self.measuring.load(Relaxed) {
            let index = self.calls.fetch_add(1, Relaxed); // concurrent calls: arrival order at this point
            if let Some(&us) = self.stalls.get(&index) {
                self.stall(index, us);
            }
        }
        match params.and_then(|p| p.get("name")) {
            Some(Json::Str(name)) if name == "work" => {}
            other => {
                let mut name = Vec::new();
                match other {
                    Some(Json::Str(s)) => name.extend_from_slice(s.as_bytes()),
                    Some(v) => json::write(&mut name, v),
                    None => name.extend_from_slice(b"None"),
                }
                let message = format!("Unknown tool: {}", String::from_utf8_lossy(&name));
                return error(out, Some(id), -32602, &message);
            }
        }
        let default_args = Json::Obj(Vec::new());
        let outcome = parse_work_args(params.and_then(|p| p.get("arguments")).unwrap_or(&default_args))
            .and_then(|args| self.work(&args));
        let (text, is_error) = match &outcome {
            Ok(text) => (text.as_str(), false),
            Err(message) => (message.as_str(), true),
        };
        begin(out, Some(id));
        out.extend_from_slice(b",\"result\":{\"content\":[{\"type\":\"text\",\"text\":");
        json::write_str(out, text);
        out.extend_from_slice(if is_error {
            b"}],\"isError\":true}}"
        } else {
            b"}],\"isError\":false}}"
        });
    }

    /// One call's simulated work; returns the payload text.
    /// Order: allocate (with cycles) -> retain -> cpu -> sleep -> build payload -> drop the garbage.
    fn work(&self, args: &WorkArgs) -> Result<String, String> {
        let n_cyclic = ((args.alloc_objects as f64 * args.cyclic_fraction) as u64 & !1).min(args.alloc_objects);
        let n_plain = args.alloc_objects - n_cyclic;
        let mut pairs: Vec<Rc<PairNode>> = Vec::new();
        let mut garbage: Vec<Box<Node>> = Vec::new();
        // try_reserve: an absurd count becomes a tool error instead of an abort
        if pairs.try_reserve_exact(n_cyclic as usize).is_err() || garbage.try_reserve_exact(n_plain as usize).is_err() {
            return Err(format!("cannot allocate {} objects", args.alloc_objects));
        }
        for _ in 0..n_cyclic / 2 {
            let a = pair_node();
            let b = pair_node();
            *a.a.borrow_mut() = Some(b.clone());
            *b.a.borrow_mut() = Some(a.clone());
            pairs.push(a);
            pairs.push(b);
        }
        for _ in 0..n_plain {
            garbage.push(node());
        }
        // keep the optimizer from proving the allocations unused and removing them
        black_box(&pairs);
        black_box(&garbage);
        if args.retain_objects > 0 {
            self.retain(args.retain_objects, args.retain_cap, args.retain_shape);
        }
        if args.cpu_iters > 0 {
            let mut x = self.cpu_sink.load(Relaxed) | 1;
            for _ in 0..args.cpu_iters {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }
            self.cpu_sink.store(black_box(x), Relaxed);
        }
        if args.sleep_us > 0 {
            thread::sleep(Duration::from_micros(args.sleep_us));
        }
        let mut bytes = Vec::new();
        if bytes.try_reserve_exact(args.payload_bytes as usize).is_err() {
            return Err(format!("cannot build a payload of {} bytes", args.payload_bytes));
        }
        bytes.resize(args.payload_bytes as usize, b'x');
        let text = String::from_utf8(bytes).unwrap_or_default(); // all ASCII
                                                                 // drop the garbage: break each pair's cycle so that reference counting can free it
        for p in &pairs {
            p.a.borrow_mut().take();
        }
        drop(pairs);
        drop(garbage);
        Ok(text)
    }

    /// Build the call's objects outside any lock, then add them to the cache under its lock.
    fn retain(&self, count: u64, cap: u64, shape: &str) {
        let keep_all = |objs: Vec<Obj>| {
            let mut cache = lock(&self.cache);
            for obj in objs {
                cache.keep(obj, cap);
            }
        };
        match shape {
            "records" => {
                // the batch's own records, so each can refer to its parent in the batch
                let mut batch: Vec<Arc<RecordMap>> = Vec::with_capacity(count as usize);
                for k in 0..count {
                    let r = record_map(k, if k > 0 { Some(&batch[((k - 1) / 2) as usize]) } else { None });
                    batch.push(r);
                }
                keep_all(batch.into_iter().map(Obj::Record).collect());
            }
            "instances" => {
                let mut batch: Vec<Arc<Record>> = Vec::with_capacity(count as usize);
                for k in 0..count {
                    let r = record(k, if k > 0 { Some(&batch[((k - 1) / 2) as usize]) } else { None });
                    batch.push(r);
                }
                keep_all(batch.into_iter().map(Obj::Instance).collect());
            }
            "json" => {
                let doc = {
                    let mut cache = lock(&self.cache);
                    if cache.doc.0 != count {
                        cache.doc = (count, Arc::new(record_doc(count)));
                    }
                    cache.doc.1.clone()
                };
                if let Ok(Json::Arr(records)) = json::parse(&doc) {
                    keep_all(records.into_iter().map(Obj::Json).collect());
                }
            }
            _ => {
                // lists: one object at a time, as before shapes existed
                let mut cache = lock(&self.cache);
                for _ in 0..count {
                    cache.keep(Obj::Node(node()), cap);
                }
            }
        }
    }

    /// Calibration: stop for exactly `us` microseconds inside this call and record it as an event.
    fn stall(&self, index: u64, us: u64) {
        let start_ns = monotonic_ns();
        let deadline_ns = start_ns + us * 1000;
        match self.stall_mode {
            StallMode::Busy => while monotonic_ns() < deadline_ns {},
            StallMode::Sleep => thread::sleep(Duration::from_micros(us)),
        }
        let end_ns = monotonic_ns();
        self.stalls_done.fetch_add(1, Relaxed);
        let line = format!(
            "{{\"type\":\"stall\",\"runtime\":\"rust\",\"kind\":\"stall\",\"generation\":-1,\"start_ns\":{start_ns},\"end_ns\":{end_ns},\"call_index\":{index}}}"
        );
        lock(&self.side).push(line.as_bytes());
    }

    fn stats_record(&self) -> String {
        let (rss_kib, hwm_kib) = proc_memory_kib();
        let mut rec = format!(
            concat!(
                "{{\"type\":\"stats\",\"runtime\":\"rust\",\"rust_version\":{},\"gc\":false,\"num_gc\":0,",
                "\"pause_total_ns\":0,\"heap_objects\":{},\"retained_objects\":{},\"calls\":{},\"stalls\":{},",
                "\"rss_bytes\":{},\"max_rss_bytes\":{},\"pid\":{}}}"
            ),
            {
                let mut v = Vec::new();
                json::write_str(&mut v, RUSTC_VERSION);
                String::from_utf8(v).unwrap_or_default()
            },
            self.heap.len(),
            lock(&self.cache).objs.len(),
            self.calls.load(Relaxed),
            self.stalls_done.load(Relaxed),
            rss_kib * 1024,
            hwm_kib * 1024,
            process::id()
        );
        rec.pop(); // the closing brace: the optional fields go before it
        if self.control {
            rec.push_str(",\"control\":true");
        }
        if let Some(meter) = &self.meter {
            rec.push_str(&meter.stats_fields());
        }
        rec.push('}');
        rec
    }

    /// Write every buffered event and a stats record; the number of events written in total.
    fn flush(&self) -> u64 {
        if let Some(meter) = &self.meter {
            let mut side = lock(&self.side);
            for line in meter.drain_lines(process::id()) {
                side.push(line.as_bytes());
            }
        }
        let stats = self.stats_record(); // takes the cache's lock: never while holding the side channel's
        lock(&self.side).write(Some(stats.as_bytes()))
    }
}

/// Resident and peak resident set size from /proc (0 where unavailable); read only at flush time.
fn proc_memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn parse_work_args(args: &Json) -> Result<WorkArgs, String> {
    let Json::Obj(members) = args else {
        return Err("arguments must be an object".to_string());
    };
    if let Some((name, _)) = members.iter().find(|(k, _)| !WORK_ARGS.contains(&k.as_str())) {
        return Err(format!("unknown argument '{name}'"));
    }
    let int = |name: &str| -> Result<u64, String> {
        match args.get(name) {
            None => Ok(0),
            Some(Json::Num(raw)) if raw.bytes().all(|c| c.is_ascii_digit()) => {
                raw.parse().map_err(|_| format!("argument '{name}' is too large"))
            }
            Some(Json::Num(raw)) if raw == "-0" => Ok(0),
            Some(_) => Err(format!("argument '{name}' must be a non-negative integer")),
        }
    };
    let cyclic_fraction = match args.get("cyclic_fraction") {
        None => 0.0,
        Some(Json::Num(raw)) => match raw.parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => v,
            _ => return Err("argument 'cyclic_fraction' must be a number from 0 to 1".to_string()),
        },
        Some(_) => return Err("argument 'cyclic_fraction' must be a number from 0 to 1".to_string()),
    };
    let retain_shape = match args.get("retain_shape") {
        None => HEAP_SHAPES[0],
        Some(Json::Str(s)) if HEAP_SHAPES.contains(&s.as_str()) => HEAP_SHAPES[HEAP_SHAPES.iter().position(|h| h == s).unwrap_or(0)],
        Some(_) => return Err(format!("argument 'retain_shape' must be one of {}", HEAP_SHAPES.join(", "))),
    };
    Ok(WorkArgs {
        retain_shape,
        alloc_objects: int("alloc_objects")?,
        cyclic_fraction,
        retain_objects: int("retain_objects")?,
        retain_cap: int("retain_cap")?,
        payload_bytes: int("payload_bytes")?,
        cpu_iters: int("cpu_iters")?,
        sleep_us: int("sleep_us")?,
    })
}

// ---- response framing ----

fn begin(out: &mut Vec<u8>, id: Option<&Json>) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    match id {
        Some(v) => json::write(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

fn result(out: &mut Vec<u8>, id: &Json, raw: &[u8]) {
    begin(out, Some(id));
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(raw);
    out.push(b'}');
}

fn error(out: &mut Vec<u8>, id: Option<&Json>, code: i32, message: &str) {
    begin(out, id);
    out.extend_from_slice(format!(",\"error\":{{\"code\":{code},\"message\":").as_bytes());
    json::write_str(out, message);
    out.extend_from_slice(b"}}");
}

// ---- process life ----

/// Which part of the gate a message needs: by its method, for a request with an id.
pub fn access_of(msg: &Result<Json, ()>) -> Access {
    let Ok(msg) = msg else { return Access::Free };
    if msg.get("id").is_none() {
        return Access::Free;
    }
    match msg.get("method").and_then(Json::as_str) {
        Some("tools/call") => Access::Call,
        Some("gcbench/measure") | Some("gcbench/flush") => Access::Exclusive,
        _ => Access::Free,
    }
}

/// A lock that survives a panic in another thread: the state is still worth flushing.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wait for the calls in flight, flush the side channel and exit. The caller holds no gate guard.
pub fn shutdown(server: &Server) -> ! {
    let _turn = server.gate.enter(Access::Exclusive);
    server.flush();
    process::exit(0)
}

/// stdio: a pool of threads that take turns reading stdin (leader/follower). The thread whose turn it is
/// reads one line, parses it and enters the gate, then hands the turn on and answers the request itself,
/// so concurrent calls run on their own threads; the pool grows by one thread whenever no thread is
/// waiting for the turn (threads are kept, at most as many as calls were ever in flight at once, plus one).
/// A response is one write_all of the whole line under stdout's lock.
struct Stdio {
    server: Arc<Server>,
    turn: Mutex<()>,
    waiting: AtomicUsize, // threads waiting for the turn
}

fn stdio_worker(st: Arc<Stdio>) {
    let mut line = Vec::with_capacity(1 << 16);
    let mut out = Vec::with_capacity(1 << 16);
    loop {
        st.waiting.fetch_add(1, Relaxed);
        let turn = lock(&st.turn);
        st.waiting.fetch_sub(1, Relaxed);
        line.clear();
        match io::stdin().lock().read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => shutdown(&st.server), // holding the turn: nothing more is read
            Ok(_) => {}
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let msg = json::parse(&line);
        // in the turn, so that a control method read after a call waits for it
        let guard = st.server.gate.enter(access_of(&msg));
        if st.waiting.load(Relaxed) == 0 {
            let next = st.clone();
            // someone must read the next line; the main thread's stack size, for the parser's recursion
            let spawned = thread::Builder::new().stack_size(8 << 20).spawn(move || stdio_worker(next));
            if spawned.is_err() {
                eprintln!("gcbench rust server: cannot start a request thread; requests wait for a free one");
            }
        }
        drop(turn);
        out.clear();
        if st.server.answer(msg, &mut out) != Reply::None {
            out.push(b'\n');
            let mut output = io::stdout().lock();
            if output.write_all(&out).and_then(|_| output.flush()).is_err() {
                drop(output);
                drop(guard);
                shutdown(&st.server) // the harness is gone
            }
        }
        drop(guard);
    }
}

fn serve_stdio(server: Arc<Server>) -> ! {
    let st = Arc::new(Stdio { server, turn: Mutex::new(()), waiting: AtomicUsize::new(0) });
    stdio_worker(st);
    unreachable!("the stdio worker exits the process")
}

fn main() {
    let sigset = signals::block(); // before any thread starts, so that every thread inherits the mask
    let config = Config::from_env().unwrap_or_else(|msg| {
        eprintln!("gcbench rust server: {msg}");
        process::exit(2)
    });
    let server = Arc::new(Server::new(&config));
    if let Some(meter) = &config.meter {
        meter.start(); // after the start-up heap exists; it inherits the blocked signal mask
    }
    {
        let server = server.clone();
        thread::spawn(move || {
            signals::wait(&sigset);
            shutdown(&server)
        });
    }
    if config.control {
        // the control process: idle until the harness closes stdin (or sends SIGTERM)
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        shutdown(&server)
    } else if config.http {
        http::serve(server)
    } else {
        serve_stdio(server)
    }
}
