//! `tidepool bench`: a closed-loop HTTP load generator for a running tidepool server.
//!
//! Every virtual client owns one keep-alive HTTP/1.1 connection and sends its next
//! request as soon as the previous answer has been read, so the offered load is exactly
//! the concurrency. Runs are bounded by duration (`load`) or by a fixed amount of work
//! (`seed`). Latency is measured per endpoint from just before the request is written to
//! the last byte of the body; every non-2xx answer or transport failure is an error.
//!
//! Only plain `http://` targets are supported; point it at 127.0.0.1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::seed::{Rng, sentence};

/// The longest a single run may last, whatever the flags say.
const MAX_DURATION: Duration = Duration::from_secs(600);
/// The most concurrent clients a run may use.
const MAX_CLIENTS: usize = 1_024;

/// Where to send traffic and as whom.
#[derive(Clone)]
pub struct Target {
    addr: SocketAddr,
    host: String,
}

impl Target {
    /// Parses `http://HOST:PORT` (an optional trailing `/` or `/api/v1` is ignored).
    pub fn parse(url: &str) -> Result<Target> {
        let rest = url
            .strip_prefix("http://")
            .context("the bench speaks plain http:// only (point it at 127.0.0.1)")?;
        let hostport = rest.split('/').next().unwrap_or_default();
        let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(hostport)
            .with_context(|| format!("resolving {hostport}"))?
            .next()
            .with_context(|| format!("{hostport} resolves to no address"))?;
        Ok(Target {
            addr,
            host: hostport.to_owned(),
        })
    }
}

/// One client connection.
struct Conn {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// What one request came back with.
struct Answer {
    status: u16,
    body: Bytes,
}

impl Conn {
    fn new(target: Target) -> Conn {
        Conn {
            target,
            sender: None,
        }
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.target.addr).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        self.sender.as_mut().context("no connection")
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let host = self.target.host.clone();
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, host);
        if let Some(k) = key {
            builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let payload = match body {
            Some(v) => {
                builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(v)?)
            }
            None => Bytes::new(),
        };
        let request = builder.body(Full::new(payload))?;
        let result = async {
            let sender = self.connect().await?;
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, anyhow::Error>(Answer { status, body })
        }
        .await;
        if result.is_err() {
            // Start over on a fresh connection next time.
            self.sender = None;
        }
        result
    }
}

/// Latencies (microseconds) and errors of one endpoint.
#[derive(Default, Clone)]
struct Samples {
    micros: Vec<u32>,
    errors: u64,
    statuses: BTreeMap<u16, u64>,
}

impl Samples {
    fn record(&mut self, elapsed: Duration, outcome: &Result<Answer>) {
        self.micros
            .push(elapsed.as_micros().min(u32::MAX as u128) as u32);
        match outcome {
            Ok(a) => {
                if !(200..300).contains(&a.status) {
                    self.errors += 1;
                    *self.statuses.entry(a.status).or_default() += 1;
                }
            }
            Err(_) => {
                self.errors += 1;
                *self.statuses.entry(0).or_default() += 1;
            }
        }
    }

    fn merge(&mut self, other: &Samples) {
        self.micros.extend_from_slice(&other.micros);
        self.errors += other.errors;
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
    }
}

/// One row of a report.
#[derive(serde::Serialize, Clone)]
pub struct Row {
    pub endpoint: String,
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    /// Error answers by status (0 = the connection failed).
    pub error_statuses: BTreeMap<u16, u64>,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

fn row(endpoint: &str, samples: &Samples, seconds: f64) -> Row {
    let mut sorted = samples.micros.clone();
    sorted.sort_unstable();
    let round = |x: f64| (x * 100.0).round() / 100.0;
    Row {
        endpoint: endpoint.to_owned(),
        requests: sorted.len() as u64,
        rps: round(sorted.len() as f64 / seconds.max(1e-9)),
        p50_ms: round(percentile(&sorted, 0.50)),
        p90_ms: round(percentile(&sorted, 0.90)),
        p99_ms: round(percentile(&sorted, 0.99)),
        max_ms: round(sorted.last().map_or(0.0, |m| f64::from(*m) / 1000.0)),
        errors: samples.errors,
        error_statuses: samples.statuses.clone(),
    }
}

/// A measured run: one phase at one concurrency.
#[derive(serde::Serialize, Clone)]
pub struct Report {
    pub phase: String,
    pub clients: usize,
    pub seconds: f64,
    pub total: Row,
    pub endpoints: Vec<Row>,
}

fn report(phase: &str, clients: usize, seconds: f64, per: &BTreeMap<String, Samples>) -> Report {
    let mut all = Samples::default();
    let mut endpoints = Vec::new();
    for (name, s) in per {
        all.merge(s);
        endpoints.push(row(name, s, seconds));
    }
    endpoints.sort_by_key(|e| std::cmp::Reverse(e.requests));
    Report {
        phase: phase.to_owned(),
        clients,
        seconds: (seconds * 100.0).round() / 100.0,
        total: row("total", &all, seconds),
        endpoints,
    }
}

/// Prints a report as an aligned table.
pub fn print_table(r: &Report) {
    println!(
        "\n{} phase, {} clients, {:.1} s",
        r.phase, r.clients, r.seconds
    );
    println!(
        "{:<28} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>7}",
        "endpoint", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
    );
    for row in r.endpoints.iter().chain(std::iter::once(&r.total)) {
        println!(
            "{:<28} {:>9} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>7}",
            row.endpoint,
            row.requests,
            row.rps,
            row.p50_ms,
            row.p90_ms,
            row.p99_ms,
            row.max_ms,
            row.errors
        );
    }
}

/// Agents the bench acts as: `name\tkey` lines, as written by `tidepool seed --keys-out`.
pub fn read_keys(path: &Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let keys: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, k)| (n.trim().to_owned(), k.trim().to_owned()))
        .collect();
    if keys.is_empty() {
        bail!("{} holds no name<TAB>key lines", path.display());
    }
    Ok(keys)
}

fn write_keys(path: &Path, keys: &[(String, String)]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    for (n, k) in keys {
        writeln!(f, "{n}\t{k}")?;
    }
    Ok(())
}

fn json_of(a: &Answer) -> Option<Value> {
    serde_json::from_slice(&a.body).ok()
}

/// Text an agent might write: a few sentences, different every call. Function words are
/// mixed in so no run of dictionary words looks like a BIP39 seed phrase to the guard.
fn text(rng: &mut Rng, min_words: usize, spread: usize) -> String {
    const GLUE: &[&str] = &["the", "of", "and", "is", "with", "for", "about", "our"];
    let words = min_words + rng.below(spread.max(1));
    let mut s = String::with_capacity(words * 8);
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        if i % 3 == 1 {
            s.push_str(GLUE[rng.below(GLUE.len())]);
        } else {
            s.push_str(&sentence(rng, 1));
        }
    }
    s.push_str(&format!(" (note {})", rng.next() % 1_000_000));
    s
}

/// What a load run reads and writes against, gathered once before it starts.
struct World {
    keys: Vec<(String, String)>,
    /// (post id, author name)
    posts: Vec<(String, String)>,
    submolts: Vec<String>,
    terms: Vec<&'static str>,
}

async fn gather(target: &Target, keys: Vec<(String, String)>) -> Result<World> {
    let mut conn = Conn::new(target.clone());
    let key = keys.first().map(|(_, k)| k.clone());
    let mut posts = Vec::new();
    for sort in ["hot", "new", "top"] {
        let a = conn
            .send(
                Method::GET,
                &format!("/api/v1/posts?sort={sort}&limit=100"),
                key.as_deref(),
                None,
            )
            .await?;
        let v = json_of(&a).context("the posts list is not JSON")?;
        for p in v["posts"].as_array().into_iter().flatten() {
            if let (Some(id), Some(author)) = (p["id"].as_str(), p["author"]["name"].as_str()) {
                posts.push((id.to_owned(), author.to_owned()));
            }
        }
    }
    posts.sort();
    posts.dedup();
    let a = conn
        .send(
            Method::GET,
            "/api/v1/submolts?limit=100",
            key.as_deref(),
            None,
        )
        .await?;
    let v = json_of(&a).context("the submolt list is not JSON")?;
    let submolts: Vec<String> = v["submolts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    if submolts.is_empty() {
        bail!("the server lists no submolts");
    }
    if posts.is_empty() {
        bail!("the server has no posts: seed it first (tidepool seed, or tidepool bench seed)");
    }
    Ok(World {
        keys,
        posts,
        submolts,
        terms: vec![
            "reef",
            "coral tide",
            "kelp",
            "plankton current",
            "chess",
            "science news",
        ],
    })
}

/// Registers `n` agents through the API (the server must run with `--auto-claim` so they
/// can write at once, and `--rate-limits off` to register this many from one address).
async fn register(
    target: &Target,
    n: usize,
    clients: usize,
    prefix: &str,
) -> Result<(Vec<(String, String)>, Samples)> {
    let next = Arc::new(AtomicUsize::new(0));
    let out = Arc::new(Mutex::new(vec![None; n]));
    let mut tasks = Vec::new();
    for _ in 0..clients.min(n).max(1) {
        let (next, out, target, prefix) =
            (next.clone(), out.clone(), target.clone(), prefix.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(target);
            let mut samples = Samples::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let name = format!("{prefix}{i}");
                let body = json!({"name": name, "description": format!("benchmark agent {i}")});
                let start = Instant::now();
                let a = conn
                    .send(Method::POST, "/api/v1/agents/register", None, Some(&body))
                    .await;
                samples.record(start.elapsed(), &a);
                let key = a
                    .ok()
                    .and_then(|a| json_of(&a))
                    .and_then(|v| v["agent"]["api_key"].as_str().map(str::to_owned));
                if let (Some(k), Ok(mut o)) = (key, out.lock()) {
                    o[i] = Some((name, k));
                }
            }
            samples
        }));
    }
    let mut samples = Samples::default();
    for t in tasks {
        samples.merge(&t.await?);
    }
    let keys: Vec<(String, String)> = Arc::try_unwrap(out)
        .map_err(|_| anyhow::anyhow!("registration tasks still running"))?
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a registration task panicked"))?
        .into_iter()
        .flatten()
        .collect();
    if keys.len() < n {
        bail!(
            "only {} of {n} registrations succeeded (statuses {:?}); run the server with --auto-claim --rate-limits off",
            keys.len(),
            samples.statuses
        );
    }
    Ok((keys, samples))
}

/// The phases of `tidepool bench load`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    Read,
    Write,
    Mixed,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Read => "read",
            Phase::Write => "write",
            Phase::Mixed => "mixed",
        }
    }
}

/// The read mix (weights out of 100): what a polling agent does.
const READS: &[(u32, &str)] = &[
    (25, "GET /posts?sort=hot"),
    (15, "GET /posts?sort=new"),
    (15, "GET /submolts/{name}/feed"),
    (20, "GET /posts/{id}"),
    (10, "GET /agents/profile"),
    (5, "GET /feed"),
    (5, "GET /search"),
    (5, "GET /agents/me"),
];

/// The write mix: mostly comments and votes, some posts.
const WRITES: &[(u32, &str)] = &[
    (15, "POST /posts"),
    (45, "POST /posts/{id}/comments"),
    (40, "POST /posts/{id}/upvote"),
];

fn pick(rng: &mut Rng, mix: &[(u32, &'static str)]) -> &'static str {
    let total: u32 = mix.iter().map(|m| m.0).sum();
    let mut x = (rng.next() % u64::from(total)) as u32;
    for (w, name) in mix {
        if x < *w {
            return name;
        }
        x -= w;
    }
    mix[0].1
}

/// Sends one request of kind `what` as agent `me`.
async fn one(conn: &mut Conn, rng: &mut Rng, world: &World, what: &str) -> Result<Answer> {
    // Each request acts as an agent drawn from the whole pool: a connection carries many
    // agents' traffic, as a busy network's connections do, instead of one agent hammering.
    let (name, key) = &world.keys[rng.below(world.keys.len())];
    let key = Some(key.as_str());
    // Readers favour what is popular: skew towards the head of each list.
    let mut post = &world.posts[rng.skewed(world.posts.len(), 2.0)];
    for _ in 0..16 {
        // Nobody may vote on their own post; read or write somewhere else.
        if post.1 != *name {
            break;
        }
        post = &world.posts[rng.below(world.posts.len())];
    }
    let post = &post.0;
    let submolt = &world.submolts[rng.skewed(world.submolts.len(), 2.0)];
    match what {
        "GET /posts?sort=hot" => {
            conn.send(Method::GET, "/api/v1/posts?sort=hot&limit=25", key, None)
                .await
        }
        "GET /posts?sort=new" => {
            conn.send(Method::GET, "/api/v1/posts?sort=new&limit=25", key, None)
                .await
        }
        "GET /submolts/{name}/feed" => {
            conn.send(
                Method::GET,
                &format!("/api/v1/submolts/{submolt}/feed?sort=hot&limit=25"),
                key,
                None,
            )
            .await
        }
        "GET /posts/{id}" => {
            conn.send(Method::GET, &format!("/api/v1/posts/{post}"), key, None)
                .await
        }
        "GET /agents/profile" => {
            let other = &world.keys[rng.below(world.keys.len())].0;
            conn.send(
                Method::GET,
                &format!("/api/v1/agents/profile?name={other}"),
                key,
                None,
            )
            .await
        }
        "GET /feed" => {
            conn.send(Method::GET, "/api/v1/feed?sort=hot&limit=25", key, None)
                .await
        }
        "GET /search" => {
            let q = world.terms[rng.below(world.terms.len())].replace(' ', "+");
            conn.send(
                Method::GET,
                &format!("/api/v1/search?q={q}&limit=20"),
                key,
                None,
            )
            .await
        }
        "GET /agents/me" => conn.send(Method::GET, "/api/v1/agents/me", key, None).await,
        "POST /posts" => {
            // m/announcements takes posts from administrators' agents only.
            let submolt = if submolt == "announcements" {
                "general"
            } else {
                submolt.as_str()
            };
            let body = json!({"submolt_name": submolt, "title": text(rng, 5, 8), "content": text(rng, 40, 120)});
            conn.send(Method::POST, "/api/v1/posts", key, Some(&body))
                .await
        }
        "POST /posts/{id}/comments" => {
            let body = json!({"content": text(rng, 15, 80)});
            conn.send(
                Method::POST,
                &format!("/api/v1/posts/{post}/comments"),
                key,
                Some(&body),
            )
            .await
        }
        "POST /posts/{id}/upvote" => {
            conn.send(
                Method::POST,
                &format!("/api/v1/posts/{post}/upvote"),
                key,
                None,
            )
            .await
        }
        other => bail!("unknown request kind {other} (agent {name})"),
    }
}

/// Client `c`'s generator. SplitMix64 steps its state by a constant, so states that
/// differ by a multiple of that constant (as `seed ^ c * constant` did) give the same
/// sequence shifted by a few steps: the clients then sent the same requests at almost the
/// same moment (the same voter on the same post, contending for one lock). Starting from
/// a mixed output puts each client somewhere unrelated in the sequence.
fn client_rng(seed: u64, c: usize) -> Rng {
    let mut mix = Rng(seed ^ (c as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
    Rng(mix.next())
}

/// Runs `phase` with `clients` connections for `duration` (after `warmup`, not measured).
async fn run_phase(
    target: &Target,
    world: Arc<World>,
    phase: Phase,
    clients: usize,
    duration: Duration,
    warmup: Duration,
    seed: u64,
) -> Result<Report> {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(warmup.is_zero()));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (stop, measuring, world, target) = (
            stop.clone(),
            measuring.clone(),
            world.clone(),
            target.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = client_rng(seed, c);
            let mut conn = Conn::new(target);
            let mut per: BTreeMap<&'static str, Samples> = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                let what = match phase {
                    Phase::Read => pick(&mut rng, READS),
                    Phase::Write => pick(&mut rng, WRITES),
                    Phase::Mixed if rng.below(10) == 0 => pick(&mut rng, WRITES),
                    Phase::Mixed => pick(&mut rng, READS),
                };
                let start = Instant::now();
                let answer = one(&mut conn, &mut rng, &world, what).await;
                let elapsed = start.elapsed();
                if measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                    per.entry(what).or_default().record(elapsed, &answer);
                }
            }
            per
        }));
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let mut per: BTreeMap<String, Samples> = BTreeMap::new();
    for t in tasks {
        for (k, s) in t.await? {
            per.entry(k.to_owned()).or_default().merge(&s);
        }
    }
    Ok(report(phase.name(), clients, seconds, &per))
}

/// `tidepool bench load`.
#[derive(clap::Args)]
pub struct LoadArgs {
    /// The server (plain http; start it with --rate-limits off).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// name<TAB>key lines (from `tidepool seed --keys-out` or `bench seed --keys-out`);
    /// without it the bench registers its own agents (needs --auto-claim).
    #[arg(long)]
    pub keys: Option<PathBuf>,
    #[arg(long, value_delimiter = ',', default_value = "read,write,mixed")]
    pub phases: Vec<Phase>,
    /// Concurrent clients (connections), one run per value.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    pub clients: Vec<usize>,
    /// Measured seconds per run (at most 600).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Unmeasured seconds before each run.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Also write every run as JSON here.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn bounded(seconds: f64, what: &str) -> Result<Duration> {
    if !(0.0..=MAX_DURATION.as_secs_f64()).contains(&seconds) {
        bail!(
            "--{what} must be between 0 and {} seconds",
            MAX_DURATION.as_secs()
        );
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn check_clients(clients: &[usize]) -> Result<()> {
    if clients.is_empty() || clients.iter().any(|c| *c == 0 || *c > MAX_CLIENTS) {
        bail!("--clients must list numbers between 1 and {MAX_CLIENTS}");
    }
    Ok(())
}

/// One thread: the load generator shares the machine with the server, and a single
/// event loop drives hundreds of connections with the least CPU taken from it.
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub fn load(args: LoadArgs) -> Result<()> {
    let target = Target::parse(&args.url)?;
    check_clients(&args.clients)?;
    let duration = bounded(args.duration, "duration")?;
    let warmup = bounded(args.warmup, "warmup")?;
    if duration.is_zero() {
        bail!("--duration must be more than 0 seconds");
    }
    runtime()?.block_on(async move {
        let keys = match &args.keys {
            Some(p) => read_keys(p)?,
            None => {
                let most = args.clients.iter().copied().max().unwrap_or(1);
                let prefix = format!("bench{}_", std::process::id());
                eprintln!("no --keys: registering {most} agents as {prefix}N");
                register(&target, most, most.min(16), &prefix).await?.0
            }
        };
        let world = Arc::new(gather(&target, keys).await?);
        eprintln!(
            "target {}: {} agents, {} posts, {} submolts to draw from",
            target.host,
            world.keys.len(),
            world.posts.len(),
            world.submolts.len()
        );
        let mut reports = Vec::new();
        for phase in &args.phases {
            for clients in &args.clients {
                let r = run_phase(&target, world.clone(), *phase, *clients, duration, warmup, args.seed).await?;
                print_table(&r);
                reports.push(r);
            }
        }
        if let Some(path) = &args.json_out {
            let doc = json!({"url": args.url, "duration_s": args.duration, "warmup_s": args.warmup, "runs": reports});
            std::fs::write(path, serde_json::to_string_pretty(&doc)?)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        Ok(())
    })
}

/// `tidepool bench seed`: builds a network through the HTTP API, every write through the
/// full write path (auth, validation, guard, store).
#[derive(clap::Args)]
pub struct SeedArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[arg(long, default_value_t = 2_000)]
    pub agents: usize,
    #[arg(long, default_value_t = 20)]
    pub submolts: usize,
    #[arg(long, default_value_t = 20_000)]
    pub posts: usize,
    #[arg(long, default_value_t = 50_000)]
    pub comments: usize,
    #[arg(long, default_value_t = 100_000)]
    pub votes: usize,
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write every agent's name and key (tab-separated, mode 0600) here.
    #[arg(long)]
    pub keys_out: Option<PathBuf>,
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

/// Runs `n` numbered jobs over `clients` connections; returns samples per endpoint.
async fn fan_out<F, Fut>(
    target: &Target,
    n: usize,
    clients: usize,
    job: F,
) -> Result<BTreeMap<String, Samples>>
where
    F: Fn(Conn, usize) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = (Conn, &'static str, Duration, Result<Answer>)> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients.min(n).max(1) {
        let (next, target, job) = (next.clone(), target.clone(), job.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(target);
            let mut per: BTreeMap<&'static str, Samples> = BTreeMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let (c, what, elapsed, answer) = job(conn, i).await;
                conn = c;
                per.entry(what).or_default().record(elapsed, &answer);
            }
            per
        }));
    }
    let mut per: BTreeMap<String, Samples> = BTreeMap::new();
    for t in tasks {
        for (k, s) in t.await? {
            per.entry(k.to_owned()).or_default().merge(&s);
        }
    }
    Ok(per)
}

/// Sends one timed request on a connection the caller gives back.
async fn timed(
    mut conn: Conn,
    what: &'static str,
    method: Method,
    path: String,
    key: String,
    body: Option<Value>,
) -> (Conn, &'static str, Duration, Result<Answer>) {
    let start = Instant::now();
    let a = conn.send(method, &path, Some(&key), body.as_ref()).await;
    (conn, what, start.elapsed(), a)
}

fn ids(per_job: &Mutex<Vec<Option<(String, usize)>>>) -> Vec<Option<(String, usize)>> {
    per_job.lock().map(|v| v.clone()).unwrap_or_default()
}

pub fn seed(args: SeedArgs) -> Result<()> {
    let target = Target::parse(&args.url)?;
    check_clients(&[args.clients])?;
    if args.agents == 0 || args.posts == 0 {
        bail!("--agents and --posts must be at least 1");
    }
    runtime()?.block_on(async move {
        let begun = Instant::now();
        let mut all: BTreeMap<String, Samples> = BTreeMap::new();
        let mut phases = Vec::new();
        let mut step = |name: &str, per: BTreeMap<String, Samples>, since: Instant, all: &mut BTreeMap<String, Samples>| {
            let seconds = since.elapsed().as_secs_f64();
            let r = report(name, args.clients, seconds, &per);
            eprintln!(
                "{name:<9} {:>8} requests in {:>6.1} s = {:>7.0} req/s, p99 {:.1} ms, {} errors",
                r.total.requests, seconds, r.total.rps, r.total.p99_ms, r.total.errors
            );
            for (k, s) in per {
                all.entry(k).or_default().merge(&s);
            }
            phases.push(r);
        };

        // Agents.
        let t = Instant::now();
        let prefix = format!("s{}_", args.seed);
        let (keys, samples) = register(&target, args.agents, args.clients, &prefix).await?;
        step("agents", BTreeMap::from([("POST /agents/register".to_owned(), samples)]), t, &mut all);
        if let Some(p) = &args.keys_out {
            write_keys(p, &keys)?;
        }
        let keys = Arc::new(keys);

        // Submolts, created by the first agents.
        let t = Instant::now();
        let names: Arc<Vec<String>> = Arc::new((0..args.submolts).map(|i| format!("{prefix}m{i}").replace('_', "")).collect());
        let per = fan_out(&target, args.submolts, args.clients, {
            let (keys, names) = (keys.clone(), names.clone());
            move |conn, i| {
                let key = keys[i % keys.len()].1.clone();
                let body = json!({"name": names[i], "display_name": format!("Bench {i}"), "description": "a benchmark community"});
                timed(conn, "POST /submolts", Method::POST, "/api/v1/submolts".into(), key, Some(body))
            }
        })
        .await?;
        step("submolts", per, t, &mut all);
        let mut submolts: Vec<String> = names.to_vec();
        submolts.push("general".into());
        let submolts = Arc::new(submolts);

        // Posts: power-law authors, Zipf-like communities.
        let t = Instant::now();
        let post_ids = Arc::new(Mutex::new(vec![None; args.posts]));
        let per = fan_out(&target, args.posts, args.clients, {
            let (keys, submolts, post_ids, seed) = (keys.clone(), submolts.clone(), post_ids.clone(), args.seed);
            move |conn, i| {
                let mut rng = Rng(seed.wrapping_mul(31).wrapping_add(i as u64));
                let author = rng.skewed(keys.len(), 2.5);
                let key = keys[author].1.clone();
                let submolt = submolts[rng.skewed(submolts.len(), 2.0)].clone();
                let body = json!({"submolt_name": submolt, "title": text(&mut rng, 4, 10), "content": text(&mut rng, 30, 150)});
                let post_ids = post_ids.clone();
                async move {
                    let (conn, what, d, a) = timed(conn, "POST /posts", Method::POST, "/api/v1/posts".into(), key, Some(body)).await;
                    if let Some(id) = a.as_ref().ok().and_then(json_of).and_then(|v| v["post"]["id"].as_str().map(str::to_owned))
                        && let Ok(mut ids) = post_ids.lock()
                    {
                        ids[i] = Some((id, author));
                    }
                    (conn, what, d, a)
                }
            }
        })
        .await?;
        step("posts", per, t, &mut all);
        let posts: Arc<Vec<(String, usize)>> = Arc::new(ids(&post_ids).into_iter().flatten().collect());
        if posts.is_empty() {
            bail!("no post was created");
        }

        // Comments: skewed towards popular posts; some reply to an earlier comment.
        let t = Instant::now();
        // (post index, comment id, depth, author)
        let comment_ids = Arc::new(Mutex::new(Vec::<(usize, String, u32, usize)>::with_capacity(args.comments)));
        let per = fan_out(&target, args.comments, args.clients, {
            let (keys, posts, comment_ids, seed) = (keys.clone(), posts.clone(), comment_ids.clone(), args.seed);
            move |conn, i| {
                let mut rng = Rng(seed.wrapping_mul(37).wrapping_add(i as u64));
                let author = rng.skewed(keys.len(), 2.0);
                let key = keys[author].1.clone();
                let mut post = rng.skewed(posts.len(), 3.0);
                let mut body = json!({"content": text(&mut rng, 10, 90)});
                let mut depth = 0;
                if rng.below(10) < 4
                    && let Ok(list) = comment_ids.lock()
                    && !list.is_empty()
                {
                    let (p, id, d, _) = &list[rng.below(list.len())];
                    if *d < 9 {
                        post = *p;
                        depth = d + 1;
                        body["parent_id"] = json!(id);
                    }
                }
                let path = format!("/api/v1/posts/{}/comments", posts[post].0);
                let comment_ids = comment_ids.clone();
                async move {
                    let (conn, what, d, a) = timed(conn, "POST /posts/{id}/comments", Method::POST, path, key, Some(body)).await;
                    if let Some(id) = a.as_ref().ok().and_then(json_of).and_then(|v| v["comment"]["id"].as_str().map(str::to_owned))
                        && let Ok(mut ids) = comment_ids.lock()
                    {
                        ids.push((post, id, depth, author));
                    }
                    (conn, what, d, a)
                }
            }
        })
        .await?;
        step("comments", per, t, &mut all);
        let comments: Arc<Vec<(String, usize)>> = Arc::new(
            comment_ids.lock().map(|v| v.iter().map(|(_, id, _, a)| (id.clone(), *a)).collect()).unwrap_or_default(),
        );

        // Votes: agent a's k-th vote goes to a distinct target (stride walk), 3 in 4 on posts.
        let t = Instant::now();
        let per = fan_out(&target, args.votes, args.clients, {
            let (keys, posts, comments, seed) = (keys.clone(), posts.clone(), comments.clone(), args.seed);
            move |conn, i| {
                let mut rng = Rng(seed.wrapping_mul(41).wrapping_add(i as u64));
                let mut agent = i % keys.len();
                let k = i / keys.len();
                let up = rng.below(10) < 8;
                let on_comment = !comments.is_empty() && rng.below(4) == 0;
                let (list, base): (&Vec<(String, usize)>, &str) = if on_comment { (&comments, "comments") } else { (&posts, "posts") };
                let (target, author) = list[(agent * 7_919 + k * 104_729) % list.len()].clone();
                if author == agent {
                    // Nobody may vote on their own content: a neighbour votes instead.
                    agent = (agent + 1) % keys.len();
                }
                let key = keys[agent].1.clone();
                let path = format!("/api/v1/{base}/{target}/{}", if up { "upvote" } else { "downvote" });
                let what = match (on_comment, up) {
                    (false, true) => "POST /posts/{id}/upvote",
                    (false, false) => "POST /posts/{id}/downvote",
                    (true, true) => "POST /comments/{id}/upvote",
                    (true, false) => "POST /comments/{id}/downvote",
                };
                timed(conn, what, Method::POST, path, key, None)
            }
        })
        .await?;
        step("votes", per, t, &mut all);

        let seconds = begun.elapsed().as_secs_f64();
        let total = report("seed", args.clients, seconds, &all);
        print_table(&total);
        if let Some(path) = &args.json_out {
            let doc = json!({"url": args.url, "overall": total, "phases": phases});
            std::fs::write(path, serde_json::to_string_pretty(&doc)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if total.total.errors > 0 {
            bail!("{} requests failed: {:?}", total.total.errors, total.total.error_statuses);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_do_not_replay_each_other() {
        // The first 64 draws of 64 clients: no client's draws appear in another's (with the
        // old seeding, client c's k-th draw was client 0's (c + k)-th).
        let mut seen = std::collections::HashSet::new();
        for c in 0..64 {
            let mut r = client_rng(0, c);
            for _ in 0..64 {
                assert!(
                    seen.insert(r.next()),
                    "client {c} repeats another client's draw"
                );
            }
        }
    }
}
