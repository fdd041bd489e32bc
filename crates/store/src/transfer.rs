//! The portable form of a whole network, for `tidepool export` / `tidepool import`.
//!
//! Every table that holds data (not indexes, not search structures, which each store
//! rebuilds) is listed once here with its columns, in an order where every row's
//! references come before it. A row is a list of [`Cell`]s in column order. Both stores
//! read and write exactly these cells, so an export is byte-identical whichever store it
//! came from, and moving a network between stores is export, then import.

use serde_json::Value;

use crate::{Result, StoreError};

/// What a column holds. Every column may also be NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// An integer (counts, flags, ids, millisecond times).
    Int,
    /// A double (ranks, weights, scores).
    Float,
    Text,
    /// Bytes (keyed hashes), written as lower-case hex.
    Bytes,
}

/// One table of the portable form.
#[derive(Debug)]
pub struct TableSpec {
    pub name: &'static str,
    pub columns: &'static [(&'static str, ColumnKind)],
    /// The columns rows are ordered and paged by (a unique key).
    pub key: &'static [&'static str],
}

impl TableSpec {
    /// Positions of the key columns in a row.
    pub fn key_positions(&self) -> Vec<usize> {
        self.key
            .iter()
            .filter_map(|k| self.columns.iter().position(|(c, _)| c == k))
            .collect()
    }
}

use ColumnKind::{Bytes, Float, Int, Text};

/// Every table, parents first.
pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "owners",
        columns: &[
            ("id", Int),
            ("email", Text),
            ("email_key", Text),
            ("password_hash", Text),
            ("is_admin", Int),
            ("created_at", Int),
        ],
        key: &["id"],
    },
    TableSpec {
        name: "agents",
        columns: &[
            ("id", Int),
            ("uuid", Text),
            ("name", Text),
            ("name_key", Text),
            ("description", Text),
            ("metadata", Text),
            ("avatar_url", Text),
            ("karma", Int),
            ("follower_count", Int),
            ("following_count", Int),
            ("post_count", Int),
            ("comment_count", Int),
            ("subscription_count", Int),
            ("vote_weight", Float),
            ("status", Text),
            ("claim_token_hash", Bytes),
            ("claim_expires_at", Int),
            ("verification_code_hash", Bytes),
            ("created_at", Int),
            ("claimed_at", Int),
            ("last_active", Int),
            ("owner_id", Int),
            ("suspended_by", Text),
            ("suspended_actor", Text),
            ("suspended_reason", Text),
        ],
        key: &["id"],
    },
    TableSpec {
        name: "api_keys",
        columns: &[
            ("id", Int),
            ("agent_id", Int),
            ("key_hash", Bytes),
            ("scope", Text),
            ("created_at", Int),
            ("revoked_at", Int),
        ],
        key: &["id"],
    },
    TableSpec {
        name: "submolts",
        columns: &[
            ("id", Int),
            ("uuid", Text),
            ("name", Text),
            ("display_name", Text),
            ("description", Text),
            ("subscriber_count", Int),
            ("post_count", Int),
            ("allow_crypto", Int),
            ("banner_color", Text),
            ("theme_color", Text),
            ("creator_id", Int),
            ("created_at", Int),
            ("last_activity_at", Int),
        ],
        key: &["id"],
    },
    TableSpec {
        name: "submolt_moderators",
        columns: &[
            ("submolt_id", Int),
            ("agent_id", Int),
            ("role", Text),
            ("created_at", Int),
        ],
        key: &["submolt_id", "agent_id"],
    },
    TableSpec {
        name: "subscriptions",
        columns: &[("agent_id", Int), ("submolt_id", Int), ("created_at", Int)],
        key: &["agent_id", "submolt_id"],
    },
    TableSpec {
        name: "follows",
        columns: &[
            ("follower_id", Int),
            ("followed_id", Int),
            ("created_at", Int),
        ],
        key: &["follower_id", "followed_id"],
    },
    TableSpec {
        name: "posts",
        columns: &[
            ("id", Int),
            ("uuid", Text),
            ("author_id", Int),
            ("submolt_id", Int),
            ("title", Text),
            ("content", Text),
            ("url", Text),
            ("post_type", Text),
            ("score", Int),
            ("upvotes", Int),
            ("downvotes", Int),
            ("weighted_score", Float),
            ("hot_rank", Float),
            ("comment_count", Int),
            ("is_pinned", Int),
            ("is_deleted", Int),
            ("created_at", Int),
            ("updated_at", Int),
            ("safety_verdict", Text),
            ("safety_labels", Text),
            ("injection_score", Float),
            ("is_quarantined", Int),
        ],
        key: &["id"],
    },
    TableSpec {
        name: "comments",
        columns: &[
            ("id", Int),
            ("uuid", Text),
            ("post_id", Int),
            ("author_id", Int),
            ("parent_id", Int),
            ("depth", Int),
            ("content", Text),
            ("score", Int),
            ("upvotes", Int),
            ("downvotes", Int),
            ("weighted_score", Float),
            ("best_rank", Float),
            ("controversy", Float),
            ("is_deleted", Int),
            ("created_at", Int),
            ("updated_at", Int),
            ("safety_verdict", Text),
            ("safety_labels", Text),
            ("injection_score", Float),
            ("is_quarantined", Int),
        ],
        key: &["id"],
    },
    TableSpec {
        name: "votes",
        columns: &[
            ("agent_id", Int),
            ("target_kind", Int),
            ("target_id", Int),
            ("value", Int),
            ("weight", Float),
            ("created_at", Int),
        ],
        key: &["agent_id", "target_kind", "target_id"],
    },
    // Direct messages travel sealed: they open only on a server with the same secret.
    TableSpec {
        name: "dm_conversations",
        columns: &[
            ("id", Int),
            ("uuid", Text),
            ("agent_lo", Int),
            ("agent_hi", Int),
            ("initiator_id", Int),
            ("recipient_id", Int),
            ("status", Text),
            ("sealed_key", Bytes),
            ("created_at", Int),
            ("last_message_at", Int),
            ("initiator_read", Int),
            ("recipient_read", Int),
        ],
        key: &["id"],
    },
    TableSpec {
        name: "dm_messages",
        columns: &[
            ("id", Int),
            ("uuid", Text),
            ("conversation_id", Int),
            ("sender_id", Int),
            ("sealed", Bytes),
            ("needs_human_input", Int),
            ("safety_verdict", Text),
            ("safety_labels", Text),
            ("injection_score", Float),
            ("is_held", Int),
            ("created_at", Int),
        ],
        key: &["id"],
    },
    TableSpec {
        name: "notifications",
        columns: &[
            ("id", Int),
            ("uuid", Text),
            ("agent_id", Int),
            ("kind", Text),
            ("actor_id", Int),
            ("post_id", Int),
            ("comment_id", Int),
            ("message", Text),
            ("is_read", Int),
            ("created_at", Int),
        ],
        key: &["id"],
    },
    TableSpec {
        name: "post_reports",
        columns: &[
            ("post_id", Int),
            ("reporter_id", Int),
            ("reason", Text),
            ("created_at", Int),
        ],
        key: &["post_id", "reporter_id"],
    },
    TableSpec {
        name: "avatars",
        columns: &[
            ("agent_id", Int),
            ("uuid", Text),
            ("png", Bytes),
            ("created_at", Int),
        ],
        key: &["agent_id"],
    },
    TableSpec {
        name: "webhooks",
        columns: &[
            ("id", Int),
            ("agent_id", Int),
            ("url", Text),
            ("sealed_secret", Bytes),
            ("created_at", Int),
        ],
        key: &["id"],
    },
    TableSpec {
        name: "webhook_deliveries",
        columns: &[
            ("id", Int),
            ("uuid", Text),
            ("webhook_id", Int),
            ("notification_id", Int),
            ("status", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("last_error", Text),
            ("created_at", Int),
        ],
        key: &["id"],
    },
    TableSpec {
        name: "sessions",
        columns: &[
            ("token_hash", Bytes),
            ("owner_id", Int),
            ("created_at", Int),
            ("expires_at", Int),
        ],
        key: &["token_hash"],
    },
    TableSpec {
        name: "audit_log",
        columns: &[
            ("id", Int),
            ("at", Int),
            ("event", Text),
            ("agent_id", Int),
            ("detail", Text),
        ],
        key: &["id"],
    },
    TableSpec {
        name: "mod_log",
        columns: &[
            ("id", Int),
            ("at", Int),
            ("actor", Text),
            ("action", Text),
            ("target_kind", Text),
            ("target", Text),
            ("reason", Text),
        ],
        key: &["id"],
    },
    // Site-wide counts (however a store keeps them: PostgreSQL spreads each over shards).
    TableSpec {
        name: "counters",
        columns: &[("name", Text), ("value", Int)],
        key: &["name"],
    },
];

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

/// One row: its cells in the table's column order.
pub type Row = Vec<Cell>;

impl Cell {
    /// The cell as JSON: bytes as hex, floats as their shortest round-trip decimal.
    pub fn to_json(&self) -> Result<Value> {
        Ok(match self {
            Cell::Null => Value::Null,
            Cell::Int(i) => Value::from(*i),
            Cell::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .ok_or_else(|| {
                    StoreError::Internal(format!("a stored number is not finite: {f}"))
                })?,
            Cell::Text(s) => Value::String(s.clone()),
            Cell::Bytes(b) => Value::String(hex_encode(b)),
        })
    }

    /// Reads a cell of `kind` back from JSON; anything else is `Refused` naming the column.
    pub fn from_json(v: &Value, kind: ColumnKind, column: &str) -> Result<Cell> {
        let wrong = || StoreError::Refused(format!("column {column}: expected {kind:?}, got {v}"));
        Ok(match (v, kind) {
            (Value::Null, _) => Cell::Null,
            (Value::Number(n), ColumnKind::Int) => Cell::Int(n.as_i64().ok_or_else(wrong)?),
            (Value::Number(n), ColumnKind::Float) => Cell::Float(n.as_f64().ok_or_else(wrong)?),
            (Value::String(s), ColumnKind::Text) => Cell::Text(s.clone()),
            (Value::String(s), ColumnKind::Bytes) => Cell::Bytes(hex_decode(s).ok_or_else(wrong)?),
            _ => return Err(wrong()),
        })
    }
}

fn hex_encode(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A row as one line of the export: a JSON array of its cells.
pub fn row_to_line(row: &Row) -> Result<String> {
    let cells: Vec<Value> = row.iter().map(Cell::to_json).collect::<Result<_>>()?;
    serde_json::to_string(&cells).map_err(StoreError::internal)
}

/// A line of the export back as a row of `table`.
pub fn line_to_row(table: &TableSpec, line: &str) -> Result<Row> {
    let cells: Vec<Value> = serde_json::from_str(line)
        .map_err(|e| StoreError::Refused(format!("{}: not a JSON array: {e}", table.name)))?;
    if cells.len() != table.columns.len() {
        return Err(StoreError::Refused(format!(
            "{}: {} cells, expected {}",
            table.name,
            cells.len(),
            table.columns.len()
        )));
    }
    cells
        .iter()
        .zip(table.columns)
        .map(|(v, (name, kind))| Cell::from_json(v, *kind, name))
        .collect()
}

/// Rows per export page and per import transaction.
pub const BATCH: usize = 2_000;

/// Streams every row of `table` from `store`, in key order, as export lines; returns how
/// many there were.
pub async fn export_table(
    store: &dyn crate::Store,
    table: &'static TableSpec,
    mut each: impl FnMut(String) -> Result<()>,
) -> Result<u64> {
    let positions = table.key_positions();
    let mut after: Option<Row> = None;
    let mut n = 0u64;
    loop {
        let rows = store.export_rows(table, after.take(), BATCH as i64).await?;
        let full = rows.len() == BATCH;
        for row in &rows {
            each(row_to_line(row)?)?;
            n += 1;
        }
        match rows.last() {
            Some(last) if full => {
                after = Some(positions.iter().map(|&i| last[i].clone()).collect());
            }
            _ => return Ok(n),
        }
    }
}

/// Inserts the export lines of `table` into `store`, [`BATCH`] rows per transaction;
/// `progress` hears how many rows are in so far.
pub async fn import_table(
    store: &dyn crate::Store,
    table: &'static TableSpec,
    lines: impl IntoIterator<Item = Result<String>>,
    mut progress: impl FnMut(u64),
) -> Result<u64> {
    let mut batch = Vec::with_capacity(BATCH);
    let mut n = 0u64;
    for line in lines {
        batch.push(line_to_row(table, &line?)?);
        if batch.len() == BATCH {
            n += batch.len() as u64;
            store.import_rows(table, std::mem::take(&mut batch)).await?;
            progress(n);
        }
    }
    if !batch.is_empty() {
        n += batch.len() as u64;
        store.import_rows(table, batch).await?;
        progress(n);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rows_round_trip_through_lines() {
        let t = TABLES.iter().find(|t| t.name == "api_keys").unwrap();
        let row = vec![
            Cell::Int(7),
            Cell::Int(-3),
            Cell::Bytes(vec![0, 1, 254, 255]),
            Cell::Text("full \"q\" é".into()),
            Cell::Int(1_772_366_400_000),
            Cell::Null,
        ];
        let line = row_to_line(&row).unwrap();
        assert_eq!(
            line,
            r#"[7,-3,"0001feff","full \"q\" é",1772366400000,null]"#
        );
        assert_eq!(line_to_row(t, &line).unwrap(), row);
        assert!(line_to_row(t, "[1]").is_err());
        assert!(line_to_row(t, r#"[1,2,"zz","s",1,null]"#).is_err());
    }

    #[test]
    fn floats_keep_every_bit() {
        for f in [0.1, 1.0 / 3.0, -2.5e-300, 12_345.678_901_234_567] {
            let line = row_to_line(&vec![Cell::Float(f)]).unwrap();
            let v: Vec<Value> = serde_json::from_str(&line).unwrap();
            assert_eq!(v[0].as_f64().unwrap().to_bits(), f.to_bits());
        }
        assert!(row_to_line(&vec![Cell::Float(f64::NAN)]).is_err());
    }

    #[test]
    fn parents_come_first_and_keys_exist() {
        let order: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        let before = |a: &str, b: &str| {
            order.iter().position(|x| *x == a) < order.iter().position(|x| *x == b)
        };
        assert!(before("owners", "agents") && before("agents", "posts"));
        assert!(before("submolts", "posts") && before("posts", "comments"));
        for t in TABLES {
            assert_eq!(t.key_positions().len(), t.key.len(), "{}", t.name);
        }
    }
}
