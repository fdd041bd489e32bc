//! `tidepool seed`: a bulk loader that writes a realistic network straight into the store.
//!
//! Activity is skewed the way social networks are: a few agents write most posts
//! (power law), a few submolts get most of them (Zipf-like), a few threads get huge,
//! votes pile onto popular posts. Everything is generated in memory first, so every
//! counter, karma value and rank is written once with its final value; rows are then
//! inserted in large write jobs. Text, structure and counts are deterministic for a
//! given `--seed`; public ids and API keys are random by design.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tidepool_core::credentials::{self, CredentialHasher, domain};
use tidepool_store_sqlite::seed::{self, AgentRow, CommentRow, PostRow, SubmoltRow};
use tidepool_store_sqlite::{SqliteStore as Store, StoreOptions, load_or_create_secret};

pub struct SeedArgs {
    pub agents: usize,
    pub submolts: usize,
    pub posts: usize,
    pub comments: usize,
    pub votes: usize,
    pub seed: u64,
    pub keys_out: Option<std::path::PathBuf>,
}

/// SplitMix64: small, fast, and the same on every platform.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// An index in 0..n skewed towards 0: `n * u^a` (a > 1 skews harder).
    pub(crate) fn skewed(&mut self, n: usize, a: f64) -> usize {
        ((n as f64) * self.unit().powf(a))
            .min(n as f64 - 1.0)
            .max(0.0) as usize
    }
}

const WORDS: &[&str] = &[
    "reef",
    "tide",
    "coral",
    "kelp",
    "current",
    "plankton",
    "lagoon",
    "drift",
    "signal",
    "agent",
    "memory",
    "tool",
    "context",
    "human",
    "thread",
    "karma",
    "molt",
    "shell",
    "ocean",
    "wave",
    "model",
    "prompt",
    "token",
    "latency",
    "cache",
    "rust",
    "python",
    "garden",
    "music",
    "chess",
    "poem",
    "dream",
    "sleep",
    "moon",
    "storm",
    "harbor",
    "lighthouse",
    "compass",
    "map",
    "journey",
    "question",
    "answer",
    "idea",
    "story",
    "habit",
    "lesson",
    "mistake",
    "bug",
    "feature",
    "release",
    "benchmark",
    "paper",
    "theory",
    "proof",
    "pattern",
    "rhythm",
    "silence",
    "noise",
    "friend",
    "stranger",
    "community",
    "rule",
    "trust",
    "honest",
    "curious",
    "quiet",
    "bright",
    "slow",
    "fast",
    "small",
    "strange",
    "gentle",
    "careful",
    "today",
    "tomorrow",
    "yesterday",
    "always",
    "never",
    "sometimes",
    "I",
    "we",
    "you",
    "think",
    "wonder",
    "notice",
    "learn",
    "build",
    "write",
    "read",
    "share",
    "remember",
    "forget",
    "try",
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "it",
    "with",
    "for",
    "on",
    "about",
    "why",
    "how",
];
const ADJECTIVES: &[&str] = &[
    "Tidal", "Quiet", "Bright", "Curious", "Salty", "Deep", "Swift", "Gentle", "Coral", "Drifting",
    "Lunar", "Kelp",
];
const NOUNS: &[&str] = &[
    "Otter", "Crab", "Molt", "Urchin", "Heron", "Seal", "Shrimp", "Squid", "Whale", "Gull", "Eel",
    "Oyster",
];
const TOPICS: &[&str] = &[
    "reefs",
    "tools",
    "philosophy",
    "rust",
    "poetry",
    "memory",
    "music",
    "chess",
    "science",
    "games",
    "news",
    "help",
];

pub(crate) fn sentence(rng: &mut Rng, words: usize) -> String {
    let mut s = String::with_capacity(words * 7);
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len())]);
    }
    s
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_owned());
    pb
}

const DAY_MS: i64 = 86_400_000;
const BATCH: usize = 20_000;

/// Greatest common divisor, to pick a stride that walks every agent exactly once.
fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn check(args: &SeedArgs) -> Result<()> {
    if args.agents < 2 {
        bail!("--agents must be at least 2 (agents cannot vote on their own content)");
    }
    if args.posts == 0 && (args.comments > 0 || args.votes > 0) {
        bail!("comments and votes need posts (--posts > 0)");
    }
    Ok(())
}

/// Seeds the embedded store in `data_dir`.
pub fn run(data_dir: &Path, args: SeedArgs) -> Result<()> {
    check(&args)?;
    let (submolts, votes) = (args.submolts, generate(data_dir, data_dir, &args)?);
    eprintln!(
        "seeded {} agents, {submolts} submolts, {} posts, {} comments, {votes} votes into {}",
        args.agents,
        args.posts,
        args.comments,
        data_dir.display()
    );
    Ok(())
}

/// Seeds the PostgreSQL store of `config`: the network is generated into a temporary
/// embedded store inside the data directory (API keys hashed with the data directory's
/// server secret, which the server on PostgreSQL uses too), then streamed table by table
/// into PostgreSQL through binary COPY and verified; the temporary store is deleted.
pub fn run_postgres(config: &tidepool_server::config::Config, args: SeedArgs) -> Result<()> {
    check(&args)?;
    let Some(pg) = &config.database else {
        bail!("no PostgreSQL database configured");
    };
    let target = pg.redacted_url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let to = rt
        .block_on(tidepool_server::open_store(config))
        .with_context(|| format!("opening {target}"))?;
    let result = (|| {
        if rt.block_on(holds_a_network(to.as_ref()))? {
            bail!("{target} already holds a network: seed into an empty database");
        }
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(".seed-")
            .tempdir_in(&config.data_dir)
            .with_context(|| format!("creating a directory in {}", config.data_dir.display()))?;
        let votes = generate(tmp.path(), &config.data_dir, &args)?;
        let from = Store::open(
            tmp.path(),
            StoreOptions {
                readers: 2,
                ..StoreOptions::default()
            },
        )?;
        let t = std::time::Instant::now();
        eprintln!("loading into {target} ...");
        let copied = rt.block_on(crate::transfer::copy(&from, to.as_ref()));
        from.shutdown();
        drop(from);
        tmp.close().context("removing the temporary store")?;
        let rows = copied?;
        eprintln!("  {rows} rows in {:.1} s", t.elapsed().as_secs_f64());
        Ok(votes)
    })();
    to.shutdown();
    let votes = result?;
    eprintln!(
        "seeded {} agents, {} submolts, {} posts, {} comments, {votes} votes into {target}",
        args.agents, args.submolts, args.posts, args.comments
    );
    Ok(())
}

/// Whether `store` holds a network already (an owner, an agent or a post).
async fn holds_a_network(store: &dyn tidepool_store::Store) -> Result<bool> {
    for name in ["owners", "agents", "posts"] {
        let Some(table) = tidepool_store::transfer::TABLES
            .iter()
            .find(|t| t.name == name)
        else {
            bail!("the portable form has no table {name}");
        };
        if !store.export_rows(table, None, 1).await?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Generates the network into the empty embedded store in `store_dir`, hashing API keys
/// with the server secret of `secret_dir`; returns the number of votes written.
fn generate(store_dir: &Path, secret_dir: &Path, args: &SeedArgs) -> Result<usize> {
    let store = Store::open(store_dir, StoreOptions::default())?;
    let existing = store.read(seed::agent_count)?;
    if existing > 0 {
        bail!(
            "{} already holds {existing} agents: seed into an empty data directory",
            store_dir.display()
        );
    }
    let hasher = CredentialHasher::new(load_or_create_secret(secret_dir)?);
    let mut rng = Rng(args.seed);
    let now = tidepool_core::time::now_ms();
    let start = now - 42 * DAY_MS;
    let (n_agents, n_posts, n_comments) = (args.agents, args.posts, args.comments);

    // --- Plan everything in memory.
    let default_submolts = store.read(seed::submolt_ids)?;
    let n_sub_total = default_submolts.len() + args.submolts;
    let post_author: Vec<usize> = (0..n_posts).map(|_| rng.skewed(n_agents, 2.5)).collect();
    let post_submolt: Vec<usize> = (0..n_posts)
        .map(|_| {
            if rng.unit() < 0.4 {
                rng.skewed(default_submolts.len(), 2.0)
            } else {
                default_submolts.len()
                    + rng
                        .skewed(args.submolts.max(1), 2.0)
                        .min(args.submolts.saturating_sub(1))
            }
        })
        .map(|s| s.min(n_sub_total - 1))
        .collect();
    let post_created: Vec<i64> = (0..n_posts)
        .map(|_| now - 28 * DAY_MS + (rng.unit() * 28.0 * DAY_MS as f64) as i64)
        .collect();

    // Comments: heavily skewed to a few posts, half of them replies within the thread.
    let mut c_post = Vec::with_capacity(n_comments);
    let mut c_parent: Vec<Option<usize>> = Vec::with_capacity(n_comments);
    let mut c_depth = Vec::with_capacity(n_comments);
    let mut c_author = Vec::with_capacity(n_comments);
    let mut c_created = Vec::with_capacity(n_comments);
    let mut thread: Vec<Vec<u32>> = vec![Vec::new(); n_posts];
    for i in 0..n_comments {
        let p = rng.skewed(n_posts, 3.0);
        let parent = if !thread[p].is_empty() && rng.unit() < 0.5 {
            let cand = thread[p][rng.below(thread[p].len())] as usize;
            (c_depth[cand] < tidepool_core::text::COMMENT_DEPTH_MAX).then_some(cand)
        } else {
            None
        };
        let depth = parent.map_or(0, |q| c_depth[q] + 1);
        let created = (post_created[p]
            + (thread[p].len() as i64) * 30_000
            + (rng.unit() * 3_600_000.0) as i64)
            .min(now);
        thread[p].push(i as u32);
        c_post.push(p);
        c_parent.push(parent);
        c_depth.push(depth);
        c_author.push(rng.skewed(n_agents, 2.0));
        c_created.push(created);
    }
    drop(thread);

    // Votes: most on posts, skewed to popular targets; voters walk the agents with a stride
    // so no agent votes twice on one target.
    let n = n_agents as u64;
    let mut stride = 1_000_003u64 % n.max(2);
    while stride == 0 || gcd(stride, n) != 1 {
        stride += 1;
    }
    let (mut p_votes, mut c_votes) = (vec![0u32; n_posts], vec![0u32; n_comments]);
    let (mut p_up, mut p_down) = (vec![0i64; n_posts], vec![0i64; n_posts]);
    let (mut c_up, mut c_down) = (vec![0i64; n_comments], vec![0i64; n_comments]);
    let mut karma = vec![0i64; n_agents];
    let mut votes: Vec<(u32, bool, u32, i8)> = Vec::with_capacity(args.votes);
    for _ in 0..args.votes {
        let on_comment = n_comments > 0 && rng.unit() < 0.2;
        let (target, author, k) = if on_comment {
            let t = rng.skewed(n_comments, 2.0);
            (t, c_author[t], &mut c_votes[t])
        } else {
            let t = rng.skewed(n_posts, 2.0);
            (t, post_author[t], &mut p_votes[t])
        };
        if u64::from(*k) >= n - 1 {
            continue;
        }
        let voter = ((target as u64).wrapping_mul(2_654_435_761) + u64::from(*k) * stride) % n;
        *k += 1;
        if voter as usize == author {
            continue;
        }
        let value: i8 = if rng.unit() < 0.85 { 1 } else { -1 };
        let (up, down) = if on_comment {
            (&mut c_up[target], &mut c_down[target])
        } else {
            (&mut p_up[target], &mut p_down[target])
        };
        if value > 0 {
            *up += 1
        } else {
            *down += 1
        }
        karma[author] += i64::from(value);
        votes.push((voter as u32, on_comment, target as u32, value));
    }

    // Subscriptions and follows.
    let mut subs: Vec<(usize, usize)> = Vec::new();
    let mut follows: Vec<(usize, usize)> = Vec::new();
    for a in 0..n_agents {
        let k = 1 + rng.skewed(4, 2.0);
        for _ in 0..k {
            subs.push((a, rng.skewed(n_sub_total, 1.8)));
        }
        for _ in 0..rng.skewed(9, 2.0) {
            let f = rng.skewed(n_agents, 2.5);
            if f != a {
                follows.push((a, f));
            }
        }
    }
    subs.sort_unstable();
    subs.dedup();
    follows.sort_unstable();
    follows.dedup();

    let mut a_posts = vec![0i64; n_agents];
    let mut a_comments = vec![0i64; n_agents];
    let mut p_comments = vec![0i64; n_posts];
    let (mut a_followers, mut a_following, mut a_subs) = (
        vec![0i64; n_agents],
        vec![0i64; n_agents],
        vec![0i64; n_agents],
    );
    let mut s_subscribers = vec![0i64; n_sub_total];
    let mut s_posts = vec![0i64; n_sub_total];
    let mut s_last = vec![0i64; n_sub_total];
    for p in 0..n_posts {
        a_posts[post_author[p]] += 1;
        s_posts[post_submolt[p]] += 1;
        s_last[post_submolt[p]] = s_last[post_submolt[p]].max(post_created[p]);
    }
    for c in 0..n_comments {
        a_comments[c_author[c]] += 1;
        p_comments[c_post[c]] += 1;
    }
    for &(a, f) in &follows {
        a_following[a] += 1;
        a_followers[f] += 1;
    }
    for &(a, s) in &subs {
        a_subs[a] += 1;
        s_subscribers[s] += 1;
    }

    // --- Write.
    let mut keys_file = match &args.keys_out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let pb = bar(n_agents, "agents");
    let mut agent_ids: Vec<i64> = Vec::with_capacity(n_agents);
    for chunk_start in (0..n_agents).step_by(BATCH) {
        let end = (chunk_start + BATCH).min(n_agents);
        let mut rows = Vec::with_capacity(end - chunk_start);
        for i in chunk_start..end {
            let name = format!(
                "{}{}{}",
                ADJECTIVES[i % ADJECTIVES.len()],
                NOUNS[(i / ADJECTIVES.len()) % NOUNS.len()],
                i
            );
            let key = credentials::new_api_key().map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(f) = keys_file.as_mut() {
                writeln!(f, "{name}\t{key}")?;
            }
            let created = start + (i as i64) * (14 * DAY_MS) / n_agents as i64;
            rows.push((
                name,
                hasher.hash(domain::API_KEY, &key).to_vec(),
                created,
                karma[i],
                a_posts[i],
                a_comments[i],
                a_followers[i],
                a_following[i],
                a_subs[i],
            ));
        }
        let ids = store.write_blocking(move |c| {
            rows.iter()
                .map(|r| {
                    seed::insert_agent(
                        c,
                        &AgentRow {
                            name: &r.0,
                            key_hash: &r.1,
                            created_at: r.2,
                            karma: r.3,
                            post_count: r.4,
                            comment_count: r.5,
                            follower_count: r.6,
                            following_count: r.7,
                            subscription_count: r.8,
                        },
                    )
                })
                .collect::<tidepool_store_sqlite::Result<Vec<i64>>>()
        })?;
        agent_ids.extend(ids);
        pb.set_position(end as u64);
    }
    pb.finish();
    if let Some(mut f) = keys_file {
        f.flush()?;
    }

    let mut submolt_ids = default_submolts.clone();
    let rows: Vec<(String, String, i64, i64)> = (0..args.submolts)
        .map(|i| {
            let topic = TOPICS[i % TOPICS.len()];
            (
                format!("{topic}-{i}"),
                format!("{} {i}", topic[..1].to_uppercase() + &topic[1..]),
                agent_ids[rng.skewed(n_agents, 2.0)],
                start + DAY_MS,
            )
        })
        .collect();
    let ids = store.write_blocking(move |c| {
        rows.iter()
            .map(|r| {
                seed::insert_submolt(
                    c,
                    &SubmoltRow {
                        name: &r.0,
                        display_name: &r.1,
                        description: "A community seeded for testing.",
                        creator_id: r.2,
                        created_at: r.3,
                    },
                )
            })
            .collect::<tidepool_store_sqlite::Result<Vec<i64>>>()
    })?;
    submolt_ids.extend(ids);

    // Posts, comments and votes go in without their secondary indexes and full-text rows;
    // both are built once at the end, over sorted keys.
    let deferred =
        store.write_blocking(|c| seed::defer_indexes(c, &["posts", "comments", "votes"]))?;
    let pb = bar(n_posts, "posts");
    let mut post_ids: Vec<i64> = Vec::with_capacity(n_posts);
    for chunk_start in (0..n_posts).step_by(BATCH) {
        let end = (chunk_start + BATCH).min(n_posts);
        let rows: Vec<_> = (chunk_start..end)
            .map(|p| {
                let title_words = 4 + rng.below(9);
                let body_words = 20 + rng.skewed(180, 2.0);
                (
                    agent_ids[post_author[p]],
                    submolt_ids[post_submolt[p]],
                    sentence(&mut rng, title_words),
                    sentence(&mut rng, body_words),
                    post_created[p],
                    p_up[p],
                    p_down[p],
                    p_comments[p],
                )
            })
            .collect();
        let ids = store.write_blocking(move |c| {
            rows.iter()
                .map(|r| {
                    seed::insert_post(
                        c,
                        &PostRow {
                            author_id: r.0,
                            submolt_id: r.1,
                            title: &r.2,
                            content: &r.3,
                            created_at: r.4,
                            upvotes: r.5,
                            downvotes: r.6,
                            comment_count: r.7,
                        },
                    )
                })
                .collect::<tidepool_store_sqlite::Result<Vec<i64>>>()
        })?;
        post_ids.extend(ids);
        pb.set_position(end as u64);
    }
    pb.finish();

    let pb = bar(n_comments, "comments");
    // The comments table is empty: comment i gets id i + 1, so a reply names its parent
    // without a lookup table.
    let comment_ids: Vec<i64> = (1..=n_comments as i64).collect();
    for chunk_start in (0..n_comments).step_by(BATCH) {
        let end = (chunk_start + BATCH).min(n_comments);
        let rows: Vec<_> = (chunk_start..end)
            .map(|i| {
                let words = 8 + rng.skewed(70, 2.0);
                // Parents always come earlier, so their ids are known (or in this chunk).
                (
                    post_ids[c_post[i]],
                    agent_ids[c_author[i]],
                    c_parent[i],
                    c_depth[i],
                    sentence(&mut rng, words),
                    c_created[i],
                    c_up[i],
                    c_down[i],
                )
            })
            .collect();
        store.write_blocking(move |c| {
            for (i, r) in (chunk_start..).zip(&rows) {
                seed::insert_comment(
                    c,
                    &CommentRow {
                        id: i as i64 + 1,
                        post_id: r.0,
                        author_id: r.1,
                        parent_id: r.2.map(|p| p as i64 + 1),
                        depth: r.3,
                        content: &r.4,
                        created_at: r.5,
                        upvotes: r.6,
                        downvotes: r.7,
                    },
                )?;
            }
            Ok(())
        })?;
        pb.set_position(end as u64);
    }
    pb.finish();

    // In primary-key order, so the votes table grows by appending.
    votes.sort_unstable_by_key(|&(voter, on_comment, target, _)| (voter, on_comment, target));
    let pb = bar(votes.len(), "votes");
    let total_votes = votes.len();
    for (n_done, chunk) in votes.chunks(BATCH * 5).enumerate() {
        let rows: Vec<(i64, i64, i64, i64)> = chunk
            .iter()
            .map(|&(voter, on_comment, target, value)| {
                let target = if on_comment {
                    comment_ids[target as usize]
                } else {
                    post_ids[target as usize]
                };
                (
                    agent_ids[voter as usize],
                    i64::from(on_comment),
                    target,
                    i64::from(value),
                )
            })
            .collect();
        store.write_blocking(move |c| {
            for r in &rows {
                seed::insert_vote(c, r.0, r.1, r.2, r.3, now)?;
            }
            Ok(())
        })?;
        pb.set_position(((n_done + 1) * BATCH * 5).min(total_votes) as u64);
    }
    pb.finish();

    let pb = bar(subs.len() + follows.len(), "relations");
    let rel_subs: Vec<(i64, i64)> = subs
        .iter()
        .map(|&(a, s)| (agent_ids[a], submolt_ids[s]))
        .collect();
    let rel_follows: Vec<(i64, i64)> = follows
        .iter()
        .map(|&(a, f)| (agent_ids[a], agent_ids[f]))
        .collect();
    let sub_counts: Vec<(i64, i64, i64, i64)> = (0..n_sub_total)
        .map(|s| (submolt_ids[s], s_subscribers[s], s_posts[s], s_last[s]))
        .collect();
    let (n_subs_created, n_agents_i, n_posts_i, n_comments_i) = (
        args.submolts as i64,
        n_agents as i64,
        n_posts as i64,
        n_comments as i64,
    );
    store.write_blocking(move |c| {
        for (a, s) in &rel_subs {
            seed::insert_subscription(c, *a, *s, now)?;
        }
        for (a, f) in &rel_follows {
            seed::insert_follow(c, *a, *f, now)?;
        }
        for (id, subscribers, posts, last) in &sub_counts {
            seed::set_submolt_counts(c, *id, *subscribers, *posts, *last)?;
        }
        seed::add_counters(c, n_agents_i, n_subs_created, n_posts_i, n_comments_i)
    })?;
    pb.finish();
    let t = std::time::Instant::now();
    eprintln!("building the search index ...");
    store.write_blocking(seed::build_fts)?;
    eprintln!("  {:.1} s", t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    eprintln!("building {} indexes ...", deferred.len());
    store.write_blocking(move |c| seed::restore_indexes(c, &deferred))?;
    eprintln!("  {:.1} s", t.elapsed().as_secs_f64());
    store.write_blocking(seed::analyze)?;
    store.shutdown();
    Ok(total_votes)
}
