//! A small HTTP/1.1 server over std's TcpListener, written by hand so that faults can act on the
//! wire: delays, resets (RST), hangs. Thread per connection, keep-alive, Content-Length and
//! chunked request bodies. Every request is recorded before it is answered.

use super::faults::FaultKind;
use super::{
    admin, api, exoscale, hetzner, metadata, vultr, Dialect, Listener, RecordedRequest, Shared,
};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

const MAX_LINE: u64 = 16 * 1024;
const MAX_HEADERS: usize = 100;
const MAX_BODY: usize = 1024 * 1024;

pub struct Request {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The request target as sent (path and query).
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client's address (Vultr's rate limit is per source address).
    pub peer: Option<std::net::IpAddr>,
    keep_alive: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
        }
    }
    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        Response::new(status, "application/json; charset=utf-8", v.to_string())
    }
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body.into())
    }
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Response {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn read_line<R: BufRead>(r: &mut R) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(bad("line too long or cut short"));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| bad("not UTF-8"))
}

/// One request, or `None` when the client closed the connection between requests.
fn read_request<R: BufRead>(r: &mut R, w: &mut TcpStream) -> io::Result<Option<Request>> {
    let line = loop {
        match read_line(r)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(bad("not an HTTP/1.x origin-form request"));
    }
    let mut headers = Vec::new();
    loop {
        let l = read_line(r)?.ok_or_else(|| bad("headers cut short"))?;
        if l.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(bad("too many headers"));
        }
        let (k, v) = l.split_once(':').ok_or_else(|| bad("malformed header"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut req = Request {
        method: method.to_string(),
        path: target.split('?').next().unwrap_or(target).to_string(),
        target: target.to_string(),
        headers,
        body: Vec::new(),
        peer: None,
        keep_alive: false,
    };
    let conn = req.header("connection").map(str::to_ascii_lowercase);
    req.keep_alive = if version == "HTTP/1.0" {
        conn.as_deref() == Some("keep-alive")
    } else {
        conn.as_deref() != Some("close")
    };
    if req
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    if req
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let size_line = read_line(r)?.ok_or_else(|| bad("chunk cut short"))?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                while read_line(r)?.is_some_and(|l| !l.is_empty()) {}
                break;
            }
            if req.body.len() + size > MAX_BODY {
                return Err(bad("body too large"));
            }
            let start = req.body.len();
            req.body.resize(start + size, 0);
            r.read_exact(&mut req.body[start..])?;
            read_line(r)?;
        }
    } else if let Some(cl) = req.header("content-length") {
        let n: usize = cl.parse().map_err(|_| bad("bad content-length"))?;
        if n > MAX_BODY {
            return Err(bad("body too large"));
        }
        req.body.resize(n, 0);
        r.read_exact(&mut req.body)?;
    }
    Ok(Some(req))
}

fn write_response(w: &mut TcpStream, resp: &Response, keep_alive: bool) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    // A 204 has no body and says no length (RFC 9110 8.6).
    if resp.status != 204 {
        out.push_str(&format!("content-length: {}\r\n", resp.body.len()));
    }
    out.push_str(if keep_alive {
        "connection: keep-alive\r\n\r\n"
    } else {
        "connection: close\r\n\r\n"
    });
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&resp.body);
    w.write_all(&bytes)?;
    w.flush()
}

/// What a `Garbled` fault answers: a proxy's error page where text or JSON was promised.
const GARBLED: &str = "<html><head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 Bad Gateway</h1></center></body></html>\n";

/// What a `ProxyStatus` fault answers: the error page of a proxy or load balancer in front of
/// the service (nginx's, as so many are), `text/html`, with none of the service's headers.
fn proxy_page(status: u16) -> Response {
    let title = format!("{status} {}", reason(status));
    Response::new(
        status,
        "text/html",
        format!(
            "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        ),
    )
    .header("server", "nginx")
}

/// The status line and headers of `resp` promising its whole body, then half of it (at least
/// one byte short); the caller closes the connection.
fn write_truncated(w: &mut TcpStream, resp: &Response) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        resp.body.len() + 1
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&resp.body[..resp.body.len() / 2]);
    w.write_all(&bytes)?;
    w.flush()
}

/// Close with RST instead of FIN: SO_LINGER on with a zero timeout.
fn reset(stream: TcpStream) {
    let linger = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let _ = nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::Linger, &linger);
    drop(stream);
}

/// Wake a thread blocked in accept() or read() on this socket: shutdown(2) does that on Linux.
pub fn shutdown_fd(fd: i32) {
    let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Both);
}

/// Serve `listener` until the fake shuts down. Runs on the calling thread.
pub fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    kind: Listener,
    netns: Option<String>,
) {
    let local = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(_) => {
                // EMFILE and the like: do not spin.
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
        };
        // An outage resets a new connection before anything is read, except on an API listener:
        // there the request is read first (serve_connection cuts it then, unanswered), because
        // the `/_fake/` admin paths are never faulted and must stay reachable to clear it.
        if kind != Listener::Api && shared.lock_faults().on_connect(&kind) {
            reset(stream);
            continue;
        }
        let shared = shared.clone();
        let kind = kind.clone();
        let netns = netns.clone();
        let spawned = std::thread::Builder::new()
            .name("fakecloud-conn".into())
            .spawn(move || serve_connection(shared, stream, peer, local, kind, netns));
        if spawned.is_err() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// The normal answer of a listener, in the fake's dialect.
fn answer(shared: &Shared, kind: &Listener, req: &Request) -> Response {
    match (kind, shared.dialect) {
        (Listener::Api, Dialect::DigitalOcean) => api::handle(shared, req),
        (Listener::Api, Dialect::Hetzner) => hetzner::handle(shared, req),
        (Listener::Metadata(id), Dialect::DigitalOcean) => metadata::handle(shared, *id, req),
        (Listener::Metadata(id), Dialect::Hetzner) => hetzner::metadata(*id, req),
        (Listener::Api, Dialect::Exoscale) => exoscale::handle(shared, req),
        (Listener::Metadata(id), Dialect::Exoscale) => exoscale::metadata(*id, req),
        (Listener::Api, Dialect::Vultr) => vultr::handle(shared, req),
        (Listener::Metadata(id), Dialect::Vultr) => vultr::metadata(*id, req),
    }
}

fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    kind: Listener,
    netns: Option<String>,
) {
    let Some(conn_id) = shared.register_conn(&stream) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let mut writer = stream;
    let Ok(read_half) = writer.try_clone() else {
        shared.unregister_conn(conn_id);
        return;
    };
    let mut reader = BufReader::new(read_half);
    loop {
        let mut req = match read_request(&mut reader, &mut writer) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    let _ =
                        write_response(&mut writer, &Response::text(400, format!("{e}\n")), false);
                }
                break;
            }
        };
        req.peer = Some(peer.ip());
        let keep_alive = req.keep_alive;
        let admin = kind == Listener::Api && req.path.starts_with("/_fake/");
        // An outage cuts each request on an API listener, and on other listeners those of
        // connections opened before it (a client's kept-alive one). Never an admin request.
        if !admin && shared.lock_faults().on_connect(&kind) {
            shared.unregister_conn(conn_id);
            reset(writer);
            return;
        }
        let resp = if admin {
            // The admin interface: never recorded, never faulted.
            admin::handle(&shared, &req)
        } else {
            let now = Instant::now();
            shared.record(RecordedRequest {
                listener: kind.clone(),
                local_addr: local,
                peer_addr: peer,
                netns: netns.clone(),
                method: req.method.clone(),
                path: req.path.clone(),
                target: req.target.clone(),
                headers: req.headers.clone(),
                body: String::from_utf8_lossy(&req.body).into_owned(),
                at: SystemTime::now(),
                since_start: now.duration_since(shared.started),
            });
            let decision = shared
                .lock_faults()
                .on_request(&kind, &req.method, &req.path);
            if !decision.delay.is_zero() && !shared.sleep(decision.delay) {
                break;
            }
            match decision.answer {
                Some(FaultKind::Reset) => {
                    shared.unregister_conn(conn_id);
                    reset(writer);
                    return;
                }
                Some(FaultKind::Truncated) => {
                    let resp = answer(&shared, &kind, &req);
                    let _ = write_truncated(&mut writer, &resp);
                    break;
                }
                Some(FaultKind::Garbled) => Response::new(200, "text/html", GARBLED),
                Some(FaultKind::ProxyStatus(code)) => proxy_page(code),
                Some(FaultKind::OtherIp) => match shared.dialect {
                    Dialect::DigitalOcean => api::other_ip_answer(&shared, &req),
                    Dialect::Hetzner => hetzner::other_ip_answer(&shared, &req),
                    Dialect::Vultr => vultr::other_ip_answer(&shared, &req),
                    // Never fires: no Exoscale path is a read of one IP by address or number.
                    Dialect::Exoscale => answer(&shared, &kind, &req),
                },
                Some(FaultKind::Hang) => {
                    // Never answer: drain until the client gives up or the fake stops.
                    let mut sink = [0u8; 4096];
                    while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
                    break;
                }
                Some(fault) => match (&kind, shared.dialect) {
                    (Listener::Api, Dialect::DigitalOcean) => {
                        api::fault_answer(&shared, &req, &fault)
                    }
                    (Listener::Api, Dialect::Hetzner) => {
                        hetzner::fault_answer(&shared, &req, &fault)
                    }
                    (Listener::Api, Dialect::Exoscale) => exoscale::fault_answer(&fault),
                    (Listener::Api, Dialect::Vultr) => vultr::fault_answer(&fault),
                    (Listener::Metadata(_), _) => metadata::fault_answer(&fault),
                },
                None => answer(&shared, &kind, &req),
            }
        };
        if write_response(&mut writer, &resp, keep_alive).is_err() || !keep_alive {
            break;
        }
    }
    shared.unregister_conn(conn_id);
}
