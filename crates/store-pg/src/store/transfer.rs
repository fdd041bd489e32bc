//! Export and import of whole tables in the portable form (`tidepool_store::transfer`).
//!
//! The statements depend on the table, so they are built from its column list; each text
//! is made once and kept for the life of the process (a few dozen, whatever the traffic).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tidepool_store::transfer::{Cell, ColumnKind, Row as TransferRow, TableSpec};
use tidepool_store::{Result, StoreError};

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{IsNull, to_sql_checked};

use super::search::{Index, Postings};
use crate::{PgError, PgPool, Row, Sql, ToSql, Tx, Type};

/// The statement with this text and these parameter types, built once.
fn statement(text: String, types: Vec<Type>) -> Result<Sql> {
    static MADE: OnceLock<Mutex<HashMap<String, Sql>>> = OnceLock::new();
    let mut made = MADE
        .get_or_init(Default::default)
        .lock()
        .map_err(StoreError::internal)?;
    if let Some(sql) = made.get(&text) {
        return Ok(*sql);
    }
    // Bounded: one text per table and statement kind.
    let sql = Sql::new(
        Box::leak(text.clone().into_boxed_str()),
        Box::leak(types.into_boxed_slice()),
    );
    made.insert(text, sql);
    Ok(sql)
}

fn column_list(table: &TableSpec) -> String {
    table
        .columns
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

fn scalar_type(kind: ColumnKind) -> Type {
    match kind {
        ColumnKind::Int => Type::INT8,
        ColumnKind::Float => Type::FLOAT8,
        ColumnKind::Text => Type::TEXT,
        ColumnKind::Bytes => Type::BYTEA,
    }
}

/// A stored value as a cell, whatever integer width the column has.
fn cell(row: &Row, i: usize, kind: ColumnKind) -> Result<Cell> {
    let bad = |e: tokio_postgres::Error| StoreError::internal(e);
    let ty = row.columns().get(i).map(|c| c.type_().clone());
    Ok(match (ty, kind) {
        (Some(Type::INT2), ColumnKind::Int) => row
            .try_get::<_, Option<i16>>(i)
            .map_err(bad)?
            .map_or(Cell::Null, |v| Cell::Int(v.into())),
        (Some(Type::INT4), ColumnKind::Int) => row
            .try_get::<_, Option<i32>>(i)
            .map_err(bad)?
            .map_or(Cell::Null, |v| Cell::Int(v.into())),
        (Some(Type::INT8), ColumnKind::Int) => row
            .try_get::<_, Option<i64>>(i)
            .map_err(bad)?
            .map_or(Cell::Null, Cell::Int),
        (Some(Type::FLOAT8), ColumnKind::Float) => row
            .try_get::<_, Option<f64>>(i)
            .map_err(bad)?
            .map_or(Cell::Null, Cell::Float),
        (Some(Type::TEXT | Type::VARCHAR), ColumnKind::Text) => row
            .try_get::<_, Option<String>>(i)
            .map_err(bad)?
            .map_or(Cell::Null, Cell::Text),
        (Some(Type::BYTEA), ColumnKind::Bytes) => row
            .try_get::<_, Option<Vec<u8>>>(i)
            .map_err(bad)?
            .map_or(Cell::Null, Cell::Bytes),
        (ty, kind) => {
            return Err(StoreError::Internal(format!(
                "column {i}: a stored {ty:?} where the portable form has {kind:?}"
            )));
        }
    })
}

fn param(cell: &Cell, kind: ColumnKind) -> Result<Box<dyn ToSql + Sync + Send>> {
    Ok(match (cell, kind) {
        (Cell::Null, ColumnKind::Int) => Box::new(None::<i64>),
        (Cell::Null, ColumnKind::Float) => Box::new(None::<f64>),
        (Cell::Null, ColumnKind::Text) => Box::new(None::<String>),
        (Cell::Null, ColumnKind::Bytes) => Box::new(None::<Vec<u8>>),
        (Cell::Int(i), ColumnKind::Int) => Box::new(*i),
        (Cell::Float(f), ColumnKind::Float) => Box::new(*f),
        (Cell::Text(s), ColumnKind::Text) => Box::new(s.clone()),
        (Cell::Bytes(b), ColumnKind::Bytes) => Box::new(b.clone()),
        (cell, kind) => {
            return Err(StoreError::Refused(format!(
                "a {cell:?} where a {kind:?} belongs"
            )));
        }
    })
}

pub(crate) async fn export_rows(
    db: &PgPool,
    table: &'static TableSpec,
    after: Option<TransferRow>,
    limit: i64,
) -> Result<Vec<TransferRow>> {
    let cols = column_list(table);
    let keys = table.key.join(", ");
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let sql = if table.name == "counters" {
        // Shards summed: the portable form has one count per name.
        params.push(param(
            after
                .as_ref()
                .and_then(|r| r.first())
                .unwrap_or(&Cell::Null),
            ColumnKind::Text,
        )?);
        params.push(Box::new(limit.max(0)));
        statement(
            "SELECT name, sum(value)::bigint FROM counters WHERE ($1::text IS NULL OR name > $1)
             GROUP BY name ORDER BY name LIMIT $2"
                .to_owned(),
            vec![Type::TEXT, Type::INT8],
        )?
    } else {
        let positions = table.key_positions();
        match &after {
            None => {
                params.push(Box::new(limit.max(0)));
                statement(
                    format!("SELECT {cols} FROM {} ORDER BY {keys} LIMIT $1", table.name),
                    vec![Type::INT8],
                )?
            }
            Some(key) => {
                let mut types = Vec::new();
                let mut marks = Vec::new();
                for (n, (cell, pos)) in key.iter().zip(&positions).enumerate() {
                    let kind = table.columns[*pos].1;
                    params.push(param(cell, kind)?);
                    types.push(scalar_type(kind));
                    marks.push(format!("${}", n + 1));
                }
                params.push(Box::new(limit.max(0)));
                types.push(Type::INT8);
                statement(
                    format!(
                        "SELECT {cols} FROM {} WHERE ({keys}) > ({}) ORDER BY {keys} LIMIT ${}",
                        table.name,
                        marks.join(", "),
                        key.len() + 1
                    ),
                    types,
                )?
            }
        }
    };
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = db.query(&sql, &refs).await?;
    rows.iter()
        .map(|r| {
            table
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| cell(r, i, *kind))
                .collect()
        })
        .collect()
}

const HELD: Sql = Sql::new(
    "SELECT (SELECT count(*) FROM owners) + (SELECT count(*) FROM agents)
          + (SELECT count(*) FROM posts)",
    &[],
);

pub(crate) async fn import_begin(db: &PgPool) -> Result<()> {
    let held: i64 = db
        .query_one(&HELD, &[])
        .await?
        .try_get(0)
        .map_err(StoreError::internal)?;
    if held > 0 {
        return Err(StoreError::Refused(
            "this store already holds a network: import into an empty one".into(),
        ));
    }
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    tx.execute(&Sql::new("DELETE FROM submolts", &[]), &[])
        .await?;
    tx.execute(&Sql::new("UPDATE counters SET value = 0", &[]), &[])
        .await?;
    tx.commit().await?;
    Ok(())
}

const COUNTER_CLEAR: Sql = Sql::new(
    "UPDATE counters SET value = 0 WHERE name = $1",
    &[Type::TEXT],
);
const COUNTER_SET: Sql = Sql::new(
    "INSERT INTO counters(name, shard, value) VALUES ($1, 0, $2)
     ON CONFLICT (name, shard) DO UPDATE SET value = excluded.value",
    &[Type::TEXT, Type::INT8],
);

pub(crate) async fn import_rows(
    db: &PgPool,
    table: &'static TableSpec,
    rows: Vec<TransferRow>,
) -> Result<()> {
    let mut conn = db.get().await?;
    let tx = conn.transaction().await?;
    if table.name == "counters" {
        for row in &rows {
            let name = param(row.first().unwrap_or(&Cell::Null), ColumnKind::Text)?;
            let value = param(row.get(1).unwrap_or(&Cell::Null), ColumnKind::Int)?;
            let (name, value): (&(dyn ToSql + Sync), &(dyn ToSql + Sync)) =
                (name.as_ref(), value.as_ref());
            tx.execute(&COUNTER_CLEAR, &[name]).await?;
            tx.execute(&COUNTER_SET, &[name, value]).await?;
        }
        tx.commit().await?;
        return Ok(());
    }
    // The rows go in through binary COPY, each cell checked against its column's kind and
    // converted to the column's exact type (a smallint flag, an integer depth).
    let types = column_types(&tx, table).await?;
    let cols = column_list(table);
    let sink = tx
        .driver()
        .copy_in(&format!("COPY {} ({cols}) FROM STDIN BINARY", table.name))
        .await
        .map_err(PgError::from)?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for row in &rows {
        if row.len() != table.columns.len() {
            return Err(StoreError::Refused(format!(
                "{}: a row of {} cells, expected {}",
                table.name,
                row.len(),
                table.columns.len()
            )));
        }
        let values = row
            .iter()
            .zip(table.columns)
            .zip(&types)
            .map(|((cell, (column, kind)), ty)| copy_value(table.name, column, cell, *kind, ty))
            .collect::<Result<Vec<CopyValue<'_>>>>()?;
        writer
            .as_mut()
            .write_raw(values)
            .await
            .map_err(PgError::from)?;
    }
    writer.as_mut().finish().await.map_err(PgError::from)?;
    // The search index, made in Rust as for every post and comment written.
    if let Some((index, postings)) = postings_of(table, &rows) {
        copy_postings(&tx, index, postings).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The exact types of `table`'s columns in the portable form's order, read from the
/// database once per table.
async fn column_types(tx: &Tx<'_>, table: &'static TableSpec) -> Result<Vec<Type>> {
    static KNOWN: OnceLock<Mutex<HashMap<&'static str, Vec<Type>>>> = OnceLock::new();
    let known = KNOWN.get_or_init(Default::default);
    if let Some(types) = known.lock().map_err(StoreError::internal)?.get(table.name) {
        return Ok(types.clone());
    }
    let described = tx
        .driver()
        .prepare(&format!(
            "SELECT {} FROM {}",
            column_list(table),
            table.name
        ))
        .await
        .map_err(PgError::from)?;
    let types: Vec<Type> = described
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    known
        .lock()
        .map_err(StoreError::internal)?
        .insert(table.name, types.clone());
    Ok(types)
}

/// One value of a binary COPY row, in its column's exact type.
#[derive(Debug)]
enum CopyValue<'a> {
    Null,
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Float8(f64),
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl ToSql for CopyValue<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Self::Null => Ok(IsNull::Yes),
            Self::Int2(v) => v.to_sql(ty, out),
            Self::Int4(v) => v.to_sql(ty, out),
            Self::Int8(v) => v.to_sql(ty, out),
            Self::Float8(v) => v.to_sql(ty, out),
            Self::Text(v) => v.to_sql(ty, out),
            Self::Bytes(v) => v.to_sql(ty, out),
        }
    }

    // Each value is made for its column's type by `copy_value`; `to_sql` above hands it
    // to the driver's own conversion for that type, which checks again.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn cell_name(cell: &Cell) -> &'static str {
    match cell {
        Cell::Null => "null",
        Cell::Int(_) => "an integer",
        Cell::Float(_) => "a number",
        Cell::Text(_) => "text",
        Cell::Bytes(_) => "bytes",
    }
}

/// `cell` of column `column` (declared `kind`, stored as `ty`) as a COPY value; a cell of
/// the wrong kind, or an integer too wide for its column, is refused by name.
fn copy_value<'a>(
    table: &str,
    column: &str,
    cell: &'a Cell,
    kind: ColumnKind,
    ty: &Type,
) -> Result<CopyValue<'a>> {
    let too_wide = |v: i64| {
        StoreError::Refused(format!(
            "{table}.{column}: {v} does not fit the column's type ({ty})"
        ))
    };
    Ok(match (cell, kind) {
        (Cell::Null, _) => CopyValue::Null,
        (Cell::Int(v), ColumnKind::Int) => match *ty {
            Type::INT2 => CopyValue::Int2(i16::try_from(*v).map_err(|_| too_wide(*v))?),
            Type::INT4 => CopyValue::Int4(i32::try_from(*v).map_err(|_| too_wide(*v))?),
            Type::INT8 => CopyValue::Int8(*v),
            _ => return Err(stored_as(table, column, kind, ty)),
        },
        (Cell::Float(v), ColumnKind::Float) if *ty == Type::FLOAT8 => CopyValue::Float8(*v),
        (Cell::Text(v), ColumnKind::Text) if matches!(*ty, Type::TEXT | Type::VARCHAR) => {
            CopyValue::Text(v)
        }
        (Cell::Bytes(v), ColumnKind::Bytes) if *ty == Type::BYTEA => CopyValue::Bytes(v),
        (Cell::Float(_), ColumnKind::Float)
        | (Cell::Text(_), ColumnKind::Text)
        | (Cell::Bytes(_), ColumnKind::Bytes) => return Err(stored_as(table, column, kind, ty)),
        (cell, kind) => {
            return Err(StoreError::Refused(format!(
                "{table}.{column}: {} where {kind:?} belongs",
                cell_name(cell)
            )));
        }
    })
}

fn stored_as(table: &str, column: &str, kind: ColumnKind, ty: &Type) -> StoreError {
    StoreError::Internal(format!(
        "{table}.{column}: stored as {ty}, which the portable form's {kind:?} does not map to"
    ))
}

/// Writes the postings of many items through binary COPY: one row per (word, item).
async fn copy_postings(tx: &Tx<'_>, index: Index, items: Vec<(i64, Postings)>) -> Result<()> {
    if items.iter().all(|(_, p)| p.words.is_empty()) {
        return Ok(());
    }
    let (table, id_column) = index.table();
    let sink = tx
        .driver()
        .copy_in(&format!(
            "COPY {table} (word, {id_column}, weight, len) FROM STDIN BINARY"
        ))
        .await
        .map_err(PgError::from)?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::INT8, Type::INT4, Type::INT4]);
    let mut writer = std::pin::pin!(writer);
    for (id, p) in &items {
        for (word, weight) in p.words.iter().zip(&p.weights) {
            writer
                .as_mut()
                .write(&[word, id, weight, &p.len])
                .await
                .map_err(PgError::from)?;
        }
    }
    writer.as_mut().finish().await.map_err(PgError::from)?;
    Ok(())
}

/// The search postings of imported live posts (title; content and url) or comments
/// (content), by id; `None` for other tables.
fn postings_of(table: &TableSpec, rows: &[TransferRow]) -> Option<(Index, Vec<(i64, Postings)>)> {
    let col = |name: &str| table.columns.iter().position(|(c, _)| *c == name);
    fn text(row: &TransferRow, i: Option<usize>) -> Option<&str> {
        match i.and_then(|i| row.get(i)) {
            Some(Cell::Text(s)) => Some(s.as_str()),
            _ => None,
        }
    }
    fn int(row: &TransferRow, i: Option<usize>) -> Option<i64> {
        match i.and_then(|i| row.get(i)) {
            Some(Cell::Int(v)) => Some(*v),
            _ => None,
        }
    }
    let (id, deleted) = (col("id"), col("is_deleted"));
    let live = rows
        .iter()
        .filter(move |r| int(r, deleted) == Some(0))
        .filter_map(move |r| int(r, id).map(|id| (id, r)));
    match table.name {
        "posts" => {
            let (t, c, u) = (col("title"), col("content"), col("url"));
            Some((
                Index::Posts,
                live.map(|(id, r)| {
                    let p = Postings::of_post(text(r, t).unwrap_or(""), text(r, c), text(r, u));
                    (id, p)
                })
                .collect(),
            ))
        }
        "comments" => {
            let c = col("content");
            Some((
                Index::Comments,
                live.map(|(id, r)| (id, Postings::of_comment(text(r, c).unwrap_or(""))))
                    .collect(),
            ))
        }
        _ => None,
    }
}

/// Tables whose ids come from an identity sequence, which must continue after the
/// imported ids.
const IDENTITY_TABLES: &[&str] = &[
    "owners",
    "agents",
    "api_keys",
    "submolts",
    "posts",
    "comments",
    "audit_log",
    "mod_log",
    "dm_conversations",
    "dm_messages",
    "notifications",
    "webhooks",
    "webhook_deliveries",
];

pub(crate) async fn import_finish(db: &PgPool) -> Result<()> {
    for t in IDENTITY_TABLES {
        let sql = statement(
            format!(
                "SELECT setval(pg_get_serial_sequence('{t}', 'id'), coalesce(max(id), 0) + 1, false)
                 FROM {t}"
            ),
            vec![],
        )?;
        db.query_one(&sql, &[]).await?;
    }
    db.get().await?.batch_execute("ANALYZE").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn refused(r: Result<CopyValue<'_>>) -> String {
        match r {
            Err(StoreError::Refused(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn cells_become_their_columns_exact_types_or_are_refused_by_name() {
        let one = Cell::Int(1);
        assert!(matches!(
            copy_value("posts", "is_deleted", &one, ColumnKind::Int, &Type::INT2),
            Ok(CopyValue::Int2(1))
        ));
        assert!(matches!(
            copy_value("comments", "depth", &one, ColumnKind::Int, &Type::INT4),
            Ok(CopyValue::Int4(1))
        ));
        assert!(matches!(
            copy_value("posts", "url", &Cell::Null, ColumnKind::Text, &Type::TEXT),
            Ok(CopyValue::Null)
        ));
        let wide = Cell::Int(70_000);
        let m = refused(copy_value(
            "votes",
            "value",
            &wide,
            ColumnKind::Int,
            &Type::INT2,
        ));
        assert!(m.contains("votes.value") && m.contains("70000"), "{m}");
        let text = Cell::Text("seven".into());
        let m = refused(copy_value(
            "posts",
            "score",
            &text,
            ColumnKind::Int,
            &Type::INT8,
        ));
        assert!(m.contains("posts.score: text where Int belongs"), "{m}");
        // A column stored as something the portable form does not map to is a bug, not
        // bad input.
        assert!(matches!(
            copy_value("posts", "title", &text, ColumnKind::Text, &Type::JSONB),
            Err(StoreError::Internal(_))
        ));
    }
}
