//! Export and import of whole tables in the portable form (`tidepool_store::transfer`).

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};
use tidepool_store::transfer::{Cell, ColumnKind, Row, TableSpec};

use crate::{DbError, Result};

fn column_list(table: &TableSpec) -> String {
    table
        .columns
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

fn to_cell(v: SqlValue, kind: ColumnKind) -> Result<Cell> {
    Ok(match (v, kind) {
        (SqlValue::Null, _) => Cell::Null,
        (SqlValue::Integer(i), ColumnKind::Int) => Cell::Int(i),
        // A whole number stored in a REAL column reads back as an integer in SQLite.
        (SqlValue::Integer(i), ColumnKind::Float) => Cell::Float(i as f64),
        (SqlValue::Real(f), ColumnKind::Float) => Cell::Float(f),
        (SqlValue::Text(s), ColumnKind::Text) => Cell::Text(s),
        (SqlValue::Blob(b), ColumnKind::Bytes) => Cell::Bytes(b),
        (other, kind) => {
            return Err(DbError::Internal(format!(
                "a stored {other:?} where the portable form has {kind:?}"
            )));
        }
    })
}

fn to_sql(cell: &Cell) -> SqlValue {
    match cell {
        Cell::Null => SqlValue::Null,
        Cell::Int(i) => SqlValue::Integer(*i),
        Cell::Float(f) => SqlValue::Real(*f),
        Cell::Text(s) => SqlValue::Text(s.clone()),
        Cell::Bytes(b) => SqlValue::Blob(b.clone()),
    }
}

/// Up to `limit` rows after the key `after`, in key order.
pub fn export_rows(
    conn: &Connection,
    table: &TableSpec,
    after: Option<&Row>,
    limit: i64,
) -> Result<Vec<Row>> {
    let keys = table.key.join(", ");
    let cols = column_list(table);
    let (sql, mut args): (String, Vec<SqlValue>) = if table.name == "counters" {
        (
            format!(
                "SELECT {cols} FROM counters WHERE (?1 IS NULL OR name > ?1) ORDER BY name LIMIT ?2"
            ),
            vec![after.and_then(|r| r.first()).map_or(SqlValue::Null, to_sql)],
        )
    } else {
        match after {
            None => (
                format!("SELECT {cols} FROM {} ORDER BY {keys} LIMIT ?1", table.name),
                vec![],
            ),
            Some(key) => {
                let marks: Vec<String> = (1..=key.len()).map(|i| format!("?{i}")).collect();
                (
                    format!(
                        "SELECT {cols} FROM {} WHERE ({keys}) > ({}) ORDER BY {keys} LIMIT ?{}",
                        table.name,
                        marks.join(", "),
                        key.len() + 1
                    ),
                    key.iter().map(to_sql).collect(),
                )
            }
        }
    };
    args.push(SqlValue::Integer(limit.max(0)));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(table.columns.len());
        for (i, (_, kind)) in table.columns.iter().enumerate() {
            row.push(to_cell(r.get::<_, SqlValue>(i)?, *kind)?);
        }
        out.push(row);
    }
    Ok(out)
}

/// Refuses a store that holds a network already; clears what a new store starts with.
pub fn import_begin(conn: &Connection) -> Result<()> {
    let held: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM owners) + (SELECT count(*) FROM agents)
              + (SELECT count(*) FROM posts)",
        [],
        |r| r.get(0),
    )?;
    if held > 0 {
        return Err(DbError::Refused(
            "this store already holds a network: import into an empty one".into(),
        ));
    }
    conn.execute_batch("DELETE FROM submolts; UPDATE counters SET value = 0;")?;
    Ok(())
}

/// Inserts the rows as given.
pub fn import_rows(conn: &Connection, table: &TableSpec, rows: &[Row]) -> Result<()> {
    let sql = if table.name == "counters" {
        "INSERT INTO counters(name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = excluded.value"
            .to_owned()
    } else {
        let marks: Vec<String> = (1..=table.columns.len()).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.name,
            column_list(table),
            marks.join(", ")
        )
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    for row in rows {
        stmt.execute(params_from_iter(row.iter().map(to_sql)))?;
    }
    Ok(())
}

/// Builds the search index over the imported posts and comments and refreshes statistics.
pub fn import_finish(conn: &Connection) -> Result<()> {
    conn.execute_batch("DELETE FROM fts_pending;")?;
    crate::seed::build_fts(conn)?;
    conn.execute_batch("ANALYZE;")?;
    Ok(())
}
