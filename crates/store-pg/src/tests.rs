//! Tests against a real PostgreSQL: `TIDEPOOL_TEST_DATABASE_URL`, or the throwaway
//! cluster of `testing`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use tidepool_core::rank;

use crate::migrate::MIGRATIONS;
use crate::testing::TestDb;
use crate::{
    LATEST_VERSION, PgConfig, PgError, PgPool, Sql, StatementMode, Type, acquire_lease, gcra_check,
};

const MODES: [StatementMode; 2] = [StatementMode::Prepared, StatementMode::Unnamed];

fn pool(db: &TestDb, mode: StatementMode) -> PgPool {
    let mut config: PgConfig = db.config();
    config.statements = mode;
    PgPool::new(&config).unwrap()
}

/// A database at the newest schema.
async fn migrated(mode: StatementMode) -> (TestDb, PgPool) {
    let db = TestDb::new().await;
    let pool = pool(&db, mode);
    assert_eq!(pool.migrate().await.unwrap(), LATEST_VERSION);
    (db, pool)
}

// ---------------------------------------------------------------------------------------
// Migrations

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_reapply_as_a_no_op() {
    let db = TestDb::new().await;
    let pool = pool(&db, StatementMode::Prepared);
    assert_eq!(pool.schema_version().await.unwrap(), None);
    assert!(!pool.schema_is_current().await.unwrap());
    assert!(
        matches!(pool.check_schema().await, Err(PgError::Refused(m)) if m.contains("tidepool migrate"))
    );

    assert_eq!(pool.migrate().await.unwrap(), LATEST_VERSION);
    assert_eq!(pool.schema_version().await.unwrap(), Some(LATEST_VERSION));
    assert!(pool.schema_is_current().await.unwrap());
    pool.check_schema().await.unwrap();

    const COUNT: Sql = Sql::new("SELECT count(*) FROM schema_migrations", &[]);
    const COUNTERS: Sql = Sql::new("SELECT count(*) FROM counters", &[]);
    let before: i64 = pool.query_one(&COUNT, &[]).await.unwrap().get(0);
    assert_eq!(before, i64::from(LATEST_VERSION));
    // Again, and from a pool in the other mode: nothing changes, no error.
    assert_eq!(pool.migrate().await.unwrap(), LATEST_VERSION);
    let other = self::pool(&db, StatementMode::Unnamed);
    assert_eq!(other.migrate().await.unwrap(), LATEST_VERSION);
    let after: i64 = pool.query_one(&COUNT, &[]).await.unwrap().get(0);
    assert_eq!(after, before);
    // The seed rows of the first migration were not inserted twice.
    let counters: i64 = pool.query_one(&COUNTERS, &[]).await.unwrap().get(0);
    assert_eq!(counters, 4 * 16, "four counters in sixteen shards");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_both_succeed() {
    let db = TestDb::new().await;
    let pools: Vec<PgPool> = (0..4).map(|i| self::pool(&db, MODES[i % 2])).collect();
    let tasks: Vec<_> = pools
        .iter()
        .cloned()
        .map(|p| tokio::spawn(async move { p.migrate().await }))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), LATEST_VERSION);
    }
    assert!(pools[0].schema_is_current().await.unwrap());
    const COUNT: Sql = Sql::new("SELECT count(*) FROM schema_migrations", &[]);
    let n: i64 = pools[0].query_one(&COUNT, &[]).await.unwrap().get(0);
    assert_eq!(n, i64::from(LATEST_VERSION));
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let (_db, pool) = migrated(StatementMode::Prepared).await;
    const BUMP: Sql = Sql::new(
        "INSERT INTO schema_migrations (version) VALUES ($1)",
        &[Type::INT4],
    );
    pool.execute(&BUMP, &[&(LATEST_VERSION + 1)]).await.unwrap();
    let err = pool.migrate().await.unwrap_err();
    assert!(
        matches!(&err, PgError::Refused(m) if m.contains("newer")),
        "{err}"
    );
    assert!(!pool.schema_is_current().await.unwrap());
    assert!(matches!(
        pool.check_schema().await,
        Err(PgError::Refused(_))
    ));
}

/// No session-level advisory lock anywhere in the crate's SQL: through pgbouncer it
/// outlives the client and a second client gets it too (SCALE-OUT.md). Scans every
/// source and SQL file (so every SQL string constant) and the embedded migrations.
#[test]
fn no_session_level_advisory_locks() {
    // Spelled in pieces so this file does not match itself.
    let forbidden = [
        concat!("pg_advisory", "_lock("),
        concat!("pg_try_advisory", "_lock("),
        concat!("pg_advisory", "_lock_shared("),
        concat!("pg_try_advisory", "_lock_shared("),
    ];
    let normalise = |s: &str| -> String {
        s.to_lowercase()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    };
    let mut texts: Vec<(String, String)> = MIGRATIONS
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("migration {}", i + 1), m.to_string()))
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("src"), root.join("tests")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs" || e == "sql") {
                texts.push((
                    path.display().to_string(),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
    }
    assert!(texts.len() > 5, "scanned too little: {}", texts.len());
    for (name, text) in &texts {
        let text = normalise(text);
        for needle in forbidden {
            assert!(
                !text.contains(needle),
                "{name} uses a session-level advisory lock ({needle}); use \
                 pg_advisory_xact_lock / pg_try_advisory_xact_lock"
            );
        }
    }
    // The scan would see one if it were there.
    assert!(normalise(concat!("SELECT PG_ADVISORY", "_LOCK (1)")).contains(forbidden[0]));
}

// ---------------------------------------------------------------------------------------
// Schema

/// The final SQLite schema (crates/store-sqlite migrations 1-10), table by table.
/// `fts_pending` and the FTS5 tables are replaced by the `post_words` / `comment_words`
/// tables.
const SQLITE_TABLES: &[(&str, &[&str])] = &[
    (
        "agents",
        &[
            "id",
            "uuid",
            "name",
            "name_key",
            "description",
            "metadata",
            "avatar_url",
            "karma",
            "follower_count",
            "following_count",
            "post_count",
            "comment_count",
            "subscription_count",
            "vote_weight",
            "status",
            "claim_token_hash",
            "claim_expires_at",
            "verification_code_hash",
            "created_at",
            "claimed_at",
            "last_active",
            "owner_id",
            "suspended_by",
            "suspended_actor",
            "suspended_reason",
        ],
    ),
    (
        "api_keys",
        &[
            "id",
            "agent_id",
            "key_hash",
            "scope",
            "created_at",
            "revoked_at",
        ],
    ),
    ("audit_log", &["id", "at", "event", "agent_id", "detail"]),
    (
        "comments",
        &[
            "id",
            "uuid",
            "post_id",
            "author_id",
            "parent_id",
            "depth",
            "content",
            "score",
            "upvotes",
            "downvotes",
            "weighted_score",
            "best_rank",
            "controversy",
            "is_deleted",
            "created_at",
            "updated_at",
            "safety_verdict",
            "safety_labels",
            "injection_score",
            "is_quarantined",
        ],
    ),
    ("counters", &["name", "shard", "value"]),
    (
        "dm_conversations",
        &[
            "id",
            "uuid",
            "agent_lo",
            "agent_hi",
            "initiator_id",
            "recipient_id",
            "status",
            "sealed_key",
            "created_at",
            "last_message_at",
            "initiator_read",
            "recipient_read",
        ],
    ),
    (
        "dm_messages",
        &[
            "id",
            "uuid",
            "conversation_id",
            "sender_id",
            "sealed",
            "needs_human_input",
            "safety_verdict",
            "safety_labels",
            "injection_score",
            "is_held",
            "created_at",
        ],
    ),
    ("follows", &["follower_id", "followed_id", "created_at"]),
    (
        "post_reports",
        &["post_id", "reporter_id", "reason", "created_at"],
    ),
    ("avatars", &["agent_id", "uuid", "png", "created_at"]),
    (
        "notifications",
        &[
            "id",
            "uuid",
            "agent_id",
            "kind",
            "actor_id",
            "post_id",
            "comment_id",
            "message",
            "is_read",
            "created_at",
        ],
    ),
    (
        "mod_log",
        &[
            "id",
            "at",
            "actor",
            "action",
            "target_kind",
            "target",
            "reason",
        ],
    ),
    (
        "owners",
        &[
            "id",
            "email",
            "email_key",
            "password_hash",
            "is_admin",
            "created_at",
        ],
    ),
    (
        "posts",
        &[
            "id",
            "uuid",
            "author_id",
            "submolt_id",
            "title",
            "content",
            "url",
            "post_type",
            "score",
            "upvotes",
            "downvotes",
            "weighted_score",
            "hot_rank",
            "comment_count",
            "is_pinned",
            "is_deleted",
            "created_at",
            "updated_at",
            "safety_verdict",
            "safety_labels",
            "injection_score",
            "is_quarantined",
        ],
    ),
    (
        "webhooks",
        &["id", "agent_id", "url", "sealed_secret", "created_at"],
    ),
    (
        "webhook_deliveries",
        &[
            "id",
            "uuid",
            "webhook_id",
            "notification_id",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "created_at",
        ],
    ),
    (
        "sessions",
        &["token_hash", "owner_id", "created_at", "expires_at"],
    ),
    (
        "submolt_moderators",
        &["submolt_id", "agent_id", "role", "created_at"],
    ),
    (
        "submolts",
        &[
            "id",
            "uuid",
            "name",
            "display_name",
            "description",
            "subscriber_count",
            "post_count",
            "allow_crypto",
            "banner_color",
            "theme_color",
            "creator_id",
            "created_at",
            "last_activity_at",
        ],
    ),
    ("subscriptions", &["agent_id", "submolt_id", "created_at"]),
    (
        "votes",
        &[
            "agent_id",
            "target_kind",
            "target_id",
            "value",
            "weight",
            "created_at",
        ],
    ),
];

const SQLITE_INDEXES: &[&str] = &[
    "agents_owner",
    "api_keys_agent",
    "audit_agent",
    "comments_author_new",
    "comments_parent",
    "comments_post_roots",
    "comments_quarantine_queue",
    "comments_roots_best",
    "comments_roots_controversial",
    "comments_roots_top",
    "dm_conversations_initiator",
    "dm_conversations_recipient",
    "dm_messages_conversation",
    "notifications_agent",
    "notifications_unread",
    "notifications_unread_new",
    "notifications_upvote",
    "post_reports_created",
    "posts_author_hot",
    "posts_author_new",
    "posts_author_top",
    "posts_hot",
    "posts_new",
    "posts_pinned",
    "posts_quarantine_queue",
    "posts_submolt_hot",
    "posts_submolt_new",
    "posts_submolt_top",
    "posts_top",
    "sessions_owner",
    "submolt_moderators_agent",
    "submolts_new",
    "submolts_popular",
    "webhook_deliveries_due",
    "webhook_deliveries_webhook",
];

#[tokio::test]
async fn schema_has_every_sqlite_table_column_and_index() {
    let (_db, pool) = migrated(StatementMode::Prepared).await;
    const COLUMNS: Sql = Sql::new(
        "SELECT column_name::text FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        &[Type::TEXT],
    );
    for (table, columns) in SQLITE_TABLES {
        let got: Vec<String> = pool
            .query(&COLUMNS, &[table])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        for c in *columns {
            assert!(
                got.iter().any(|g| g == c),
                "{table}.{c} missing; have {got:?}"
            );
        }
    }
    const INDEX: Sql = Sql::new(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname = $1",
        &[Type::TEXT],
    );
    for index in SQLITE_INDEXES.iter().chain(&[
        "post_words_pkey",
        "comment_words_pkey",
        // SQLite's keys, under PostgreSQL's names: one report per agent and post, one
        // avatar per agent, each public id once.
        "post_reports_pkey",
        "avatars_pkey",
        "avatars_uuid_key",
        // One webhook per agent, each delivery's public id once.
        "webhooks_agent_id_key",
        "webhook_deliveries_uuid_key",
    ]) {
        let n: i64 = pool.query_one(&INDEX, &[index]).await.unwrap().get(0);
        assert_eq!(n, 1, "index {index} missing");
    }
    const TYPE: Sql = Sql::new(
        "SELECT data_type::text, is_identity::text FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2",
        &[Type::TEXT, Type::TEXT],
    );
    for (table, column, ty, identity) in [
        ("posts", "id", "bigint", "YES"),
        ("comments", "id", "bigint", "YES"),
        ("posts", "is_quarantined", "smallint", "NO"),
        ("posts", "hot_rank", "double precision", "NO"),
        ("posts", "created_at", "bigint", "NO"),
        ("agents", "claim_token_hash", "bytea", "NO"),
        ("agents", "vote_weight", "double precision", "NO"),
        ("post_words", "word", "text", "NO"),
        ("comment_words", "weight", "integer", "NO"),
        ("rate_gcra", "tat", "timestamp with time zone", "NO"),
        ("leases", "epoch", "bigint", "NO"),
        ("job_runs", "tick", "bigint", "NO"),
        ("meta", "value", "text", "NO"),
        ("dm_conversations", "id", "bigint", "YES"),
        ("dm_conversations", "sealed_key", "bytea", "NO"),
        ("dm_messages", "id", "bigint", "YES"),
        ("dm_messages", "is_held", "smallint", "NO"),
        ("notifications", "id", "bigint", "YES"),
        ("notifications", "actor_id", "bigint", "NO"),
        ("notifications", "is_read", "smallint", "NO"),
        ("notifications", "created_at", "bigint", "NO"),
        ("post_reports", "post_id", "bigint", "NO"),
        ("post_reports", "reporter_id", "bigint", "NO"),
        ("post_reports", "created_at", "bigint", "NO"),
        ("avatars", "agent_id", "bigint", "NO"),
        ("avatars", "png", "bytea", "NO"),
        ("avatars", "created_at", "bigint", "NO"),
        ("webhooks", "id", "bigint", "YES"),
        ("webhooks", "sealed_secret", "bytea", "NO"),
        ("webhook_deliveries", "id", "bigint", "YES"),
        ("webhook_deliveries", "attempts", "bigint", "NO"),
        ("webhook_deliveries", "next_attempt_at", "bigint", "NO"),
    ] {
        let row = pool.query_one(&TYPE, &[&table, &column]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), ty, "{table}.{column}");
        assert_eq!(
            row.get::<_, String>(1),
            identity,
            "{table}.{column} identity"
        );
    }
    const PERSISTENCE: Sql = Sql::new(
        "SELECT relpersistence::text FROM pg_class WHERE oid = to_regclass($1)",
        &[Type::TEXT],
    );
    let p: String = pool
        .query_one(&PERSISTENCE, &[&"rate_gcra"])
        .await
        .unwrap()
        .get(0);
    assert_eq!(p, "u", "rate_gcra must be UNLOGGED");
}

// ---------------------------------------------------------------------------------------
// Ranking functions

/// Deterministic pseudo-random numbers (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
}

fn close(sql: f64, rust: f64) -> bool {
    sql == rust || (sql - rust).abs() <= 1e-9 * sql.abs().max(rust.abs())
}

#[tokio::test]
async fn ranking_functions_match_rust() {
    const N: usize = 4000;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut scores = vec![0.0, 1.0, -1.0, 10.0, -10.0, 0.5, -0.5, 1e9, -1e9];
    let mut created = vec![
        1_134_028_003_000,
        0,
        1_700_000_000_000,
        -5,
        4_000_000_000_000,
    ];
    while scores.len() < N {
        let s = match scores.len() % 3 {
            0 => rng.range(-100_000, 100_000) as f64,
            // Weighted scores are fractional.
            1 => rng.range(-10_000_000, 10_000_000) as f64 / 997.0,
            _ => rng.range(-50, 50) as f64 * 0.25,
        };
        scores.push(s);
    }
    while created.len() < N {
        created.push(rng.range(0, 2_500_000_000_000));
    }
    let now: Vec<i64> = created
        .iter()
        .map(|c| c + rng.range(-3_600_000, 400 * 3_600_000))
        .collect();
    let mut ups = vec![0i64, 1, 0, 5, 1_000_000, 3];
    let mut downs = vec![0i64, 0, 1, 5, 1, 1_000_000];
    while ups.len() < N {
        let scale = [10, 1_000, 1_000_000][ups.len() % 3];
        ups.push(rng.range(0, scale));
        downs.push(rng.range(0, scale));
    }

    const HOT: Sql = Sql::new(
        "SELECT tp_hot(s, c) FROM unnest($1::float8[], $2::int8[]) WITH ORDINALITY AS u(s, c, i)
         ORDER BY i",
        &[Type::FLOAT8_ARRAY, Type::INT8_ARRAY],
    );
    const RISING: Sql = Sql::new(
        "SELECT tp_rising(s, c, n)
           FROM unnest($1::float8[], $2::int8[], $3::int8[]) WITH ORDINALITY AS u(s, c, n, i)
         ORDER BY i",
        &[Type::FLOAT8_ARRAY, Type::INT8_ARRAY, Type::INT8_ARRAY],
    );
    const VOTES: Sql = Sql::new(
        "SELECT tp_wilson(u, d), tp_controversy(u, d)
           FROM unnest($1::int8[], $2::int8[]) WITH ORDINALITY AS v(u, d, i)
         ORDER BY i",
        &[Type::INT8_ARRAY, Type::INT8_ARRAY],
    );
    for mode in MODES {
        let (_db, pool) = migrated(mode).await;
        let rows = pool.query(&HOT, &[&scores, &created]).await.unwrap();
        assert_eq!(rows.len(), N);
        for (i, row) in rows.iter().enumerate() {
            let (sql, rust) = (row.get::<_, f64>(0), rank::hot(scores[i], created[i]));
            assert!(
                close(sql, rust),
                "hot({}, {}): sql {sql} rust {rust}",
                scores[i],
                created[i]
            );
        }
        let rows = pool
            .query(&RISING, &[&scores, &created, &now])
            .await
            .unwrap();
        assert_eq!(rows.len(), N);
        for (i, row) in rows.iter().enumerate() {
            let (sql, rust) = (
                row.get::<_, f64>(0),
                rank::rising(scores[i], created[i], now[i]),
            );
            assert!(
                close(sql, rust),
                "rising({}, {}, {}): sql {sql} rust {rust}",
                scores[i],
                created[i],
                now[i]
            );
        }
        let rows = pool.query(&VOTES, &[&ups, &downs]).await.unwrap();
        assert_eq!(rows.len(), N);
        for (i, row) in rows.iter().enumerate() {
            let (u, d) = (ups[i], downs[i]);
            let (sql, rust) = (row.get::<_, f64>(0), rank::wilson_lower_bound(u, d));
            assert!(close(sql, rust), "wilson({u}, {d}): sql {sql} rust {rust}");
            let (sql, rust) = (row.get::<_, f64>(1), rank::controversy(u, d));
            assert!(
                close(sql, rust),
                "controversy({u}, {d}): sql {sql} rust {rust}"
            );
        }
    }
}

#[tokio::test]
async fn hot_rounds_halves_away_from_zero_like_rust() {
    let (_db, pool) = migrated(StatementMode::Prepared).await;
    const ROUND: Sql = Sql::new("SELECT tp_round_half_away($1)", &[Type::FLOAT8]);
    for x in [
        0.5,
        -0.5,
        1.5,
        2.5,
        -2.5,
        0.499_999_999_999_999_94,
        1e15 + 0.5,
        3.0,
        0.0,
    ] {
        let got: f64 = pool.query_one(&ROUND, &[&x]).await.unwrap().get(0);
        assert_eq!(got, f64::round(x), "round({x})");
    }
    // Reddit: score 10 at its epoch ranks exactly 1.
    const STORED: Sql = Sql::new("SELECT tp_hot(10, 1134028003000)", &[]);
    let v: f64 = pool.query_one(&STORED, &[]).await.unwrap().get(0);
    assert_eq!(v, 1.0);
}

// ---------------------------------------------------------------------------------------
// Pool, statement modes, probe

#[tokio::test]
async fn probe_passes_on_a_direct_connection_in_both_modes() {
    let db = TestDb::new().await;
    for mode in MODES {
        let mut config = db.config();
        config.statements = mode;
        let pool = PgPool::connect(&config).await.unwrap();
        // Twice on the same pooled connection: the cached statement is reused.
        pool.probe().await.unwrap();
        assert_eq!(pool.mode(), mode);
    }
}

#[tokio::test]
async fn probe_refuses_prepared_when_statements_vanish_between_transactions() {
    let db = TestDb::new().await;
    let pool = pool(&db, StatementMode::Prepared);
    // What pgbouncer 1.18 in transaction mode does to the second transaction: another
    // server connection, where the statement was never prepared.
    let err = crate::pool::probe_prepared_with(&pool, "DEALLOCATE ALL")
        .await
        .unwrap_err();
    match err {
        PgError::Refused(m) => {
            assert!(m.contains(r#"statements = "unnamed""#), "{m}");
            assert!(m.contains("second run"), "{m}");
        }
        other => panic!("expected a refusal, got {other}"),
    }
}

#[tokio::test]
async fn helpers_work_in_both_modes() {
    const PUT: Sql = Sql::new(
        "INSERT INTO meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[Type::TEXT, Type::TEXT],
    );
    const GET: Sql = Sql::new("SELECT value FROM meta WHERE key = $1", &[Type::TEXT]);
    const ALL: Sql = Sql::new("SELECT key FROM meta ORDER BY key", &[]);
    const TYPED: Sql = Sql::new(
        "SELECT $1::int8 + 1, $2::float8 * 2, $3::bytea, $4::bool, $5::int2, $6::int4",
        &[
            Type::INT8,
            Type::FLOAT8,
            Type::BYTEA,
            Type::BOOL,
            Type::INT2,
            Type::INT4,
        ],
    );
    for mode in MODES {
        let (_db, pool) = migrated(mode).await;
        assert_eq!(pool.execute(&PUT, &[&"a", &"1"]).await.unwrap(), 1);
        assert_eq!(pool.execute(&PUT, &[&"b", &"2"]).await.unwrap(), 1);
        let v: Option<String> = pool.query_one(&GET, &[&"a"]).await.unwrap().get(0);
        assert_eq!(v.as_deref(), Some("1"));
        assert!(pool.query_opt(&GET, &[&"zz"]).await.unwrap().is_none());
        assert!(pool.query_opt(&GET, &[&"b"]).await.unwrap().is_some());
        assert_eq!(pool.query(&ALL, &[]).await.unwrap().len(), 2);
        assert!(matches!(
            pool.query_one(&GET, &[&"zz"]).await,
            Err(PgError::RowCount(0))
        ));
        assert!(matches!(
            pool.query_one(&ALL, &[]).await,
            Err(PgError::RowCount(2))
        ));
        assert!(matches!(
            pool.query_opt(&ALL, &[]).await,
            Err(PgError::RowCount(2))
        ));
        // A statement whose declared types do not match the values is refused up front.
        assert!(matches!(
            pool.query(&GET, &[]).await,
            Err(PgError::Config(_))
        ));

        let row = pool
            .query_one(
                &TYPED,
                &[&41i64, &1.25f64, &vec![1u8, 2], &true, &7i16, &9i32],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 42);
        assert_eq!(row.get::<_, f64>(1), 2.5);
        assert_eq!(row.get::<_, Vec<u8>>(2), vec![1, 2]);
        assert!(row.get::<_, bool>(3));
        assert_eq!(row.get::<_, i16>(4), 7);
        assert_eq!(row.get::<_, i32>(5), 9);

        // Transactions: rollback leaves nothing, commit keeps, reads inside see writes.
        let mut conn = pool.get().await.unwrap();
        let tx = conn.transaction().await.unwrap();
        tx.execute(&PUT, &[&"c", &"3"]).await.unwrap();
        assert!(tx.query_opt(&GET, &[&"c"]).await.unwrap().is_some());
        tx.rollback().await.unwrap();
        assert!(conn.query_opt(&GET, &[&"c"]).await.unwrap().is_none());
        let tx = conn.transaction().await.unwrap();
        tx.execute(&PUT, &[&"c", &"3"]).await.unwrap();
        assert_eq!(tx.query(&ALL, &[]).await.unwrap().len(), 3);
        tx.commit().await.unwrap();
        drop(conn);
        assert!(pool.query_opt(&GET, &[&"c"]).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn statement_timeout_applies_in_both_modes() {
    const SHOW: Sql = Sql::new("SELECT current_setting('statement_timeout')", &[]);
    const SLEEP: Sql = Sql::new("SELECT pg_sleep(2)", &[]);
    let db = TestDb::new().await;
    for mode in MODES {
        let mut config = db.config();
        config.statements = mode;
        config.statement_timeout_ms = 300;
        let pool = PgPool::new(&config).unwrap();
        let mut conn = pool.get().await.unwrap();
        // Prepared (direct): a startup option, so every statement has it.
        let outside: String = conn.query_one(&SHOW, &[]).await.unwrap().get(0);
        assert_eq!(
            outside == "300ms",
            mode == StatementMode::Prepared,
            "{mode:?}: {outside}"
        );
        // Both: inside a transaction of the pool.
        let tx = conn.transaction().await.unwrap();
        let inside: String = tx.query_one(&SHOW, &[]).await.unwrap().get(0);
        assert_eq!(inside, "300ms", "{mode:?}");
        let started = std::time::Instant::now();
        let err = tx.query(&SLEEP, &[]).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(1500), "{mode:?}");
        match err {
            PgError::Db(e) => assert_eq!(
                e.code(),
                Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
                "{mode:?}"
            ),
            other => panic!("{mode:?}: {other}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shared state: GCRA limiter and scheduler lease

#[tokio::test]
async fn gcra_allows_a_burst_then_limits() {
    for mode in MODES {
        let (_db, pool) = migrated(mode).await;
        let interval = Duration::from_secs(1);
        let mut allowed = 0;
        let mut limited = 0;
        let mut last_tat = SystemTime::UNIX_EPOCH;
        for _ in 0..5 {
            match gcra_check(&pool, "key:1", interval, 3).await.unwrap() {
                Some(tat) => {
                    assert!(tat > last_tat, "tat grows by the interval");
                    last_tat = tat;
                    allowed += 1;
                }
                None => limited += 1,
            }
        }
        assert_eq!((allowed, limited), (3, 2), "{mode:?}");
        // Another bucket is independent.
        assert!(
            gcra_check(&pool, "key:2", interval, 3)
                .await
                .unwrap()
                .is_some()
        );
        // One emission interval later exactly one more is allowed.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(
            gcra_check(&pool, "key:1", interval, 3)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            gcra_check(&pool, "key:1", interval, 3)
                .await
                .unwrap()
                .is_none()
        );
        // burst 0 behaves as 1.
        assert!(
            gcra_check(&pool, "key:3", interval, 0)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            gcra_check(&pool, "key:3", interval, 0)
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn lease_has_one_holder_and_fences_with_the_epoch() {
    for mode in MODES {
        let (_db, pool) = migrated(mode).await;
        let ttl = Duration::from_millis(400);
        assert_eq!(
            acquire_lease(&pool, "scheduler", "a", ttl).await.unwrap(),
            Some(1)
        );
        assert_eq!(
            acquire_lease(&pool, "scheduler", "b", ttl).await.unwrap(),
            None
        );
        // Renewal by the holder keeps the epoch.
        assert_eq!(
            acquire_lease(&pool, "scheduler", "a", ttl).await.unwrap(),
            Some(1)
        );
        // Other leases are independent.
        assert_eq!(
            acquire_lease(&pool, "other", "b", ttl).await.unwrap(),
            Some(1)
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            acquire_lease(&pool, "scheduler", "b", ttl).await.unwrap(),
            Some(2),
            "{mode:?}"
        );
        assert_eq!(
            acquire_lease(&pool, "scheduler", "a", ttl).await.unwrap(),
            None
        );
        assert_eq!(
            acquire_lease(&pool, "scheduler", "b", ttl).await.unwrap(),
            Some(2)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lease_attempts_elect_one_holder() {
    let (_db, pool) = migrated(StatementMode::Unnamed).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                acquire_lease(&pool, "race", &format!("node{i}"), Duration::from_secs(30)).await
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}
