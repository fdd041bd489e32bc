//! Connection handling over raw sockets: slow and idle clients are cut off, connection
//! caps per address and in all, oversized heads answered in the JSON envelope, and
//! `nosniff` on every response. Bounds on time are generous (the machine is shared): each
//! test asserts "closed within the timeout plus several seconds", never a tight figure.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::TestServer;

/// Slack added to every configured timeout before a test gives up.
const SLACK: Duration = Duration::from_secs(10);

fn addr(s: &TestServer) -> SocketAddr {
    s.base.strip_prefix("http://").unwrap().parse().unwrap()
}

/// A connection from a chosen loopback address (Linux routes all of 127/8 to `lo`).
async fn connect_from(s: &TestServer, from: [u8; 4]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr(s)).await.unwrap()
}

/// One response: status, head, body; None when the server closed the connection first.
async fn read_response(stream: &mut TcpStream) -> Option<(u16, String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
    Some((status, head, body))
}

async fn get(stream: &mut TcpStream, path: &str) -> Option<(u16, String, String)> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: tidepool.test\r\n\r\n");
    stream.write_all(req.as_bytes()).await.ok()?;
    read_response(stream).await
}

/// Waits until the server closes `stream`, returning what it sent meanwhile; None if it
/// is still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(got)
}

#[tokio::test]
async fn a_slow_client_is_cut_off_while_others_are_served() {
    let s = TestServer::start_with(|c| {
        c.rate_limits_enabled = false;
        c.connections.header_read_timeout_secs = 1;
    })
    .await;
    let slow = TcpStream::connect(addr(&s)).await.unwrap();
    let (mut rd, mut wr) = slow.into_split();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    });
    wr.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: tidepool.test\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut served_meanwhile = 0;
    let mut line = 0;
    while !reader.is_finished() && started.elapsed() < Duration::from_secs(1) + SLACK {
        tokio::time::sleep(Duration::from_millis(300)).await;
        line += 1;
        // Writes may fail once the server has closed; the reader tells.
        let _ = wr
            .write_all(format!("X-Slow-{line}: still typing\r\n").as_bytes())
            .await;
        if !reader.is_finished() {
            s.get("/api/v1/health", None).await.ok();
            served_meanwhile += 1;
        }
    }
    assert!(
        reader.is_finished(),
        "a client trickling a header line every 300 ms was still connected after {:?}",
        started.elapsed()
    );
    let got = reader.await.unwrap();
    assert!(
        !String::from_utf8_lossy(&got).contains(" 200 "),
        "the slow request was answered: {}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        served_meanwhile > 0,
        "no other request was served meanwhile"
    );
    // Others are still served afterwards.
    s.get("/api/v1/health", None).await.ok();
    s.stop().await;
}

#[tokio::test]
async fn keep_alive_works_and_idle_connections_are_closed() {
    let s = TestServer::start_with(|c| {
        c.rate_limits_enabled = false;
        c.connections.idle_timeout_secs = 1;
    })
    .await;
    let mut conn = TcpStream::connect(addr(&s)).await.unwrap();
    // Several requests on one connection, back to back.
    for _ in 0..3 {
        let (status, head, _) = get(&mut conn, "/api/v1/health").await.unwrap();
        assert_eq!(status, 200);
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
    }
    // Then nothing: the server closes it.
    let got = closed_within(&mut conn, Duration::from_secs(1) + SLACK)
        .await
        .expect("an idle keep-alive connection stayed open");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    s.stop().await;
}

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_closed() {
    let s = TestServer::start_with(|c| {
        c.connections.header_read_timeout_secs = 1;
        c.connections.idle_timeout_secs = 600;
    })
    .await;
    let mut silent = TcpStream::connect(addr(&s)).await.unwrap();
    closed_within(&mut silent, Duration::from_secs(1) + SLACK)
        .await
        .expect("a silent connection stayed open");
    s.stop().await;
}

#[tokio::test]
async fn one_address_cannot_take_more_than_its_share_of_connections() {
    let s = TestServer::start_with(|c| {
        c.rate_limits_enabled = false;
        c.connections.max_per_address = 3;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = connect_from(&s, [127, 0, 0, 1]).await;
        assert_eq!(get(&mut c, "/api/v1/health").await.unwrap().0, 200);
        held.push(c);
    }
    // The fourth from the same address is closed at once, unanswered.
    let mut extra = connect_from(&s, [127, 0, 0, 1]).await;
    let _ = extra
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: tidepool.test\r\n\r\n")
        .await;
    let got = closed_within(&mut extra, SLACK)
        .await
        .expect("the connection over the cap stayed open");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    // Another address is served meanwhile.
    let mut other = connect_from(&s, [127, 0, 0, 2]).await;
    assert_eq!(get(&mut other, "/api/v1/health").await.unwrap().0, 200);
    // The held connections still work, and a closed one gives its place back.
    assert_eq!(get(&mut held[0], "/api/v1/health").await.unwrap().0, 200);
    drop(held.pop());
    let deadline = Instant::now() + SLACK;
    loop {
        let mut again = connect_from(&s, [127, 0, 0, 1]).await;
        if let Some((status, _, _)) = get(&mut again, "/api/v1/health").await {
            assert_eq!(status, 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed place was never given back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn the_global_cap_holds_and_trusted_proxies_skip_only_the_per_address_cap() {
    let s = TestServer::start_with(|c| {
        c.rate_limits_enabled = false;
        c.connections.max_per_address = 1;
        c.connections.max_total = 3;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let mut held = Vec::new();
    // The proxy's address may hold more than one connection...
    for _ in 0..2 {
        let mut c = connect_from(&s, [127, 0, 0, 1]).await;
        assert_eq!(get(&mut c, "/api/v1/health").await.unwrap().0, 200);
        held.push(c);
    }
    let mut c = connect_from(&s, [127, 0, 0, 2]).await;
    assert_eq!(get(&mut c, "/api/v1/health").await.unwrap().0, 200);
    held.push(c);
    // ...but the server as a whole holds three.
    for from in [[127, 0, 0, 3], [127, 0, 0, 1]] {
        let mut over = connect_from(&s, from).await;
        let _ = over
            .write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: tidepool.test\r\n\r\n")
            .await;
        let got = closed_within(&mut over, SLACK)
            .await
            .expect("a connection over the global cap stayed open");
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    }
    s.stop().await;
}

#[tokio::test]
async fn a_body_that_never_finishes_is_refused() {
    let s = TestServer::start_with(|c| {
        c.rate_limits_enabled = false;
        c.connections.body_read_timeout_secs = 1;
    })
    .await;
    let mut conn = TcpStream::connect(addr(&s)).await.unwrap();
    conn.write_all(
        b"POST /api/v1/agents/register HTTP/1.1\r\nHost: tidepool.test\r\n\
          Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(1) + SLACK, read_response(&mut conn))
        .await
        .expect("a stalled body held its request open");
    if let Some((status, _, body)) = answer {
        assert_eq!(status, 400, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["success"], false);
    }
    assert!(started.elapsed() < Duration::from_secs(1) + SLACK);
    s.stop().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_idle_or_silent_connections() {
    let s = TestServer::start_with(|c| {
        c.connections.header_read_timeout_secs = 120;
        c.connections.idle_timeout_secs = 120;
    })
    .await;
    let mut idle = TcpStream::connect(addr(&s)).await.unwrap();
    assert_eq!(get(&mut idle, "/api/v1/health").await.unwrap().0, 200);
    let _silent = TcpStream::connect(addr(&s)).await.unwrap();
    // Let the server accept the silent one.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    tokio::time::timeout(SLACK, s.stop())
        .await
        .expect("shutdown waited for connections with nothing in progress");
    assert!(started.elapsed() < SLACK);
}

#[tokio::test]
async fn oversized_heads_get_a_431_in_the_error_envelope() {
    let s = TestServer::start().await;
    // One huge header: over the 16 KiB default.
    let r = s
        .client
        .get(format!("{}/api/v1/health", s.base))
        .header("x-big", "a".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 431);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["statusCode"], 431);
    assert!(
        body["error"].is_string() && body["hint"].is_string(),
        "{body}"
    );
    // Too many headers: over the 100 default.
    let mut req = s.client.get(format!("{}/api/v1/health", s.base));
    for i in 0..120 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 431);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["statusCode"], 431, "{body}");
    // Web pages get the same envelope (the head is refused before any page logic).
    let r = s
        .client
        .get(format!("{}/login", s.base))
        .header("accept", "text/html")
        .header("cookie", format!("x={}", "c".repeat(20 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 431);
    assert_eq!(r.json::<Value>().await.unwrap()["statusCode"], 431);
    // Within the limits all is well.
    let r = s
        .client
        .get(format!("{}/api/v1/health", s.base))
        .header("x-big", "a".repeat(8 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    s.stop().await;
}

#[tokio::test]
async fn every_response_says_nosniff() {
    let s = TestServer::start().await;
    let a = s.register("Sniffer").await;
    let cases: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/api/v1/health", None),
        (Method::GET, "/api/v1/agents/me", None),
        (Method::GET, "/skill.md", None),
        (Method::GET, "/skill.json", None),
        (Method::GET, "/api/v1/openapi.json", None),
        (Method::GET, "/api/v1/no/such/route", None),
        (Method::DELETE, "/api/v1/health", None),
        (
            Method::POST,
            "/api/v1/agents/register",
            Some(json!({"name": 5})),
        ),
        (Method::GET, "/m", None),
        (Method::GET, "/static/style.css", None),
    ];
    for (method, path, body) in cases {
        let mut req = s
            .client
            .request(method.clone(), format!("{}{path}", s.base))
            .bearer_auth(&a.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        assert_eq!(
            r.headers()
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{method} {path} ({})",
            r.status()
        );
    }
    s.stop().await;
}
