//! Streamable HTTP (stateless, JSON responses) over HTTP/1.1 with keep-alive: POST /mcp, one message each.
//!
//! A thread per connection reads and writes, so requests on different connections run at the same time
//! (only the retained cache and the side channel have locks; control methods wait for the calls in flight,
//! see Server::gate). The process exits when stdin reaches EOF.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use crate::{shutdown, Reply, Server};

const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

pub fn serve(server: Arc<Server>) -> ! {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&format!("cannot listen: {e}")));
    let port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(&format!("no port: {e}")));
    {
        let mut stdout = io::stdout().lock();
        if writeln!(stdout, "GCBENCH_LISTENING {port}")
            .and_then(|_| stdout.flush())
            .is_err()
        {
            fail("cannot write the listening line");
        }
    }
    {
        // the harness closes our stdin to stop us, in HTTP mode too
        let server = server.clone();
        thread::spawn(move || {
            let mut sink = [0u8; 4096];
            let mut stdin = io::stdin().lock();
            loop {
                match stdin.read(&mut sink) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            shutdown(&server)
        });
    }
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let server = server.clone();
        thread::spawn(move || {
            let _ = connection(stream, &server); // a broken connection ends only itself
        });
    }
    shutdown(&server)
}

fn fail(msg: &str) -> ! {
    eprintln!("gcbench rust server: {msg}");
    std::process::exit(2)
}

struct Head {
    method: String,
    path: String,
    content_length: Option<usize>,
    chunked: bool,
    origin: Option<String>,
    keep_alive: bool,
    expect_continue: bool,
}

fn connection(stream: TcpStream, server: &Server) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(1 << 16, stream.try_clone()?);
    let mut writer = stream;
    let mut body = Vec::new();
    let mut out = Vec::with_capacity(1 << 16);
    let mut response = Vec::with_capacity(1 << 16);
    loop {
        let head = match read_head(&mut reader)? {
            Some(Ok(head)) => head,
            Some(Err(status)) => return send(&mut writer, &mut response, status, b"", false),
            None => return Ok(()), // the client closed the connection
        };
        if head.chunked || head.content_length.is_none() && head.method == "POST" {
            return send(&mut writer, &mut response, 411, b"", false); // only Content-Length bodies
        }
        let length = head.content_length.unwrap_or(0);
        if length > MAX_BODY_BYTES {
            return send(&mut writer, &mut response, 413, b"", false);
        }
        if head.expect_continue {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        body.clear();
        body.resize(length, 0);
        reader.read_exact(&mut body)?; // read even a refused request's body, to keep the stream in step
        let path = head.path.split('?').next().unwrap_or("");
        let status = if path != "/mcp" {
            404
        } else if head.origin.as_deref().is_some_and(|o| !origin_allowed(o)) {
            403
        } else if head.method != "POST" {
            405 // no SSE stream and no sessions to delete: this server is stateless and answers in JSON
        } else {
            out.clear();
            match server.handle(&body, &mut out) {
                Reply::None => 202,
                Reply::Response => 200,
                Reply::Invalid => 400, // not JSON, or not a JSON-RPC message: the error object is the body
            }
        };
        let payload: &[u8] = if status == 200 || status == 400 { &out } else { b"" };
        send(&mut writer, &mut response, status, payload, head.keep_alive)?;
        if !head.keep_alive {
            return Ok(());
        }
    }
}

/// The request line and headers; None at a clean end of stream, Some(Err(status)) for a bad request.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Result<Head, u16>>> {
    let mut line = Vec::new();
    let mut total = 0;
    // a blank line or two before the request line is tolerated (RFC 9112 2.2)
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        total += line.len();
        if total > MAX_HEAD_BYTES {
            return Ok(Some(Err(431)));
        }
        if !trim(&line).is_empty() {
            break;
        }
    }
    let request_line = String::from_utf8_lossy(trim(&line)).into_owned();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(path), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(Some(Err(400)));
    };
    let mut head = Head {
        method: method.to_string(),
        path: path.to_string(),
        content_length: None,
        chunked: false,
        origin: None,
        keep_alive: version == "HTTP/1.1",
        expect_continue: false,
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Ok(Some(Err(505)));
    }
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        total += line.len();
        if total > MAX_HEAD_BYTES {
            return Ok(Some(Err(431)));
        }
        let header = trim(&line);
        if header.is_empty() {
            return Ok(Some(Ok(head)));
        }
        let header = String::from_utf8_lossy(header);
        let Some((name, value)) = header.split_once(':') else {
            return Ok(Some(Err(400)));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => match value.parse() {
                Ok(n) if head.content_length.is_none() || head.content_length == Some(n) => {
                    head.content_length = Some(n)
                }
                _ => return Ok(Some(Err(400))),
            },
            "transfer-encoding" => head.chunked = true,
            "origin" => head.origin = Some(value.to_string()),
            "connection" => {
                let value = value.to_ascii_lowercase();
                if value.split(',').any(|t| t.trim() == "close") {
                    head.keep_alive = false;
                } else if value.split(',').any(|t| t.trim() == "keep-alive") {
                    head.keep_alive = true;
                }
            }
            "expect" => head.expect_continue = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }
}

fn trim(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && (line[end - 1] == b'\n' || line[end - 1] == b'\r') {
        end -= 1;
    }
    &line[..end]
}

/// Loopback origins only (a defence against DNS rebinding): 127.0.0.1, localhost or [::1], any port.
fn origin_allowed(origin: &str) -> bool {
    ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|host| match origin.strip_prefix(host) {
            Some("") => true,
            Some(rest) => rest
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit())),
            None => false,
        })
}

fn send(writer: &mut TcpStream, buf: &mut Vec<u8>, status: u16, body: &[u8], keep_alive: bool) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "HTTP Version Not Supported",
    };
    buf.clear();
    buf.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    if !body.is_empty() {
        buf.extend_from_slice(b"Content-Type: application/json\r\n");
    }
    if status == 405 {
        buf.extend_from_slice(b"Allow: POST\r\n");
    }
    buf.extend_from_slice(if keep_alive {
        b"Connection: keep-alive\r\n"
    } else {
        b"Connection: close\r\n"
    });
    buf.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    buf.extend_from_slice(body);
    writer.write_all(buf)?; // one write: head and body leave in the same segment when they fit
    writer.flush()
}
