//! `tidepool export --out DIR` and `tidepool import --from DIR`: a whole network, table by
//! table, as JSON Lines in the store-independent form of `tidepool_store::transfer`, with a
//! manifest of row counts and SHA-256 digests. The same network exports to the same bytes
//! from either store, so an import is verified by exporting the result again and comparing
//! digests.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tidepool_store::Store;
use tidepool_store::transfer::{Row, TABLES, TableSpec, export_table, import_table};

const FORMAT: &str = "tidepool-export";
const VERSION: u32 = 1;
const MANIFEST: &str = "manifest.json";

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Manifest {
    format: String,
    version: u32,
    tables: Vec<TableEntry>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct TableEntry {
    name: String,
    rows: u64,
    sha256: String,
}

fn file_of(table: &TableSpec) -> String {
    format!("{}.jsonl", table.name)
}

fn bar(len: Option<u64>, what: &str) -> indicatif::ProgressBar {
    let pb = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let template = if len.is_some() {
        "{msg:>20} [{bar:30}] {pos}/{len} rows"
    } else {
        "{msg:>20} {spinner} {pos} rows"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_owned());
    pb
}

/// Every table's rows, digest and count, written into `out` (which must be new or empty).
pub async fn export(store: &dyn Store, out: &Path) -> Result<()> {
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        bail!(
            "{} is not empty: export into a new directory",
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut tables = Vec::new();
    for table in TABLES {
        let path = out.join(file_of(table));
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer = BufWriter::new(file);
        let mut digest = Sha256::new();
        let pb = bar(None, table.name);
        let mut io_error = None;
        let rows = export_table(store, table, |line| {
            digest.update(line.as_bytes());
            digest.update(b"\n");
            if let Err(e) = writer
                .write_all(line.as_bytes())
                .and_then(|()| writer.write_all(b"\n"))
            {
                io_error.get_or_insert(e);
            }
            pb.inc(1);
            Ok(())
        })
        .await?;
        if let Some(e) = io_error {
            return Err(e).with_context(|| format!("writing {}", path.display()));
        }
        writer.flush()?;
        pb.finish();
        tables.push(TableEntry {
            name: table.name.to_owned(),
            rows,
            sha256: hex::encode(digest.finalize()),
        });
    }
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        version: VERSION,
        tables,
    };
    std::fs::write(
        out.join(MANIFEST),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
    println!(
        "exported {} tables, {rows} rows into {}",
        manifest.tables.len(),
        out.display()
    );
    Ok(())
}

fn read_manifest(from: &Path) -> Result<Manifest> {
    let path = from.join(MANIFEST);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: Manifest =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        bail!(
            "{} is a {} version {} export; this tidepool reads {FORMAT} version {VERSION}",
            path.display(),
            manifest.format,
            manifest.version
        );
    }
    let names: Vec<&str> = manifest.tables.iter().map(|t| t.name.as_str()).collect();
    let expected: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    if names != expected {
        bail!("the export's tables {names:?} are not {expected:?}");
    }
    Ok(manifest)
}

/// Digest and line count of one exported file.
fn digest_file(path: &Path) -> Result<(u64, String)> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut digest = Sha256::new();
    let mut rows = 0u64;
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        digest.update(line.as_bytes());
        digest.update(b"\n");
        rows += 1;
    }
    Ok((rows, hex::encode(digest.finalize())))
}

/// Checks every file against the manifest, imports every table into `store` (which must
/// hold no network yet), then exports the result again and compares digests.
pub async fn import(store: &dyn Store, from: &Path) -> Result<()> {
    let manifest = read_manifest(from)?;
    // Nothing is written unless every file is whole.
    for (table, entry) in TABLES.iter().zip(&manifest.tables) {
        let (rows, sha) = digest_file(&from.join(file_of(table)))?;
        if rows != entry.rows || sha != entry.sha256 {
            bail!(
                "{}: {rows} rows with digest {sha}, the manifest says {} rows with {}: the export is damaged",
                file_of(table),
                entry.rows,
                entry.sha256
            );
        }
    }
    store.import_begin().await?;
    for (table, entry) in TABLES.iter().zip(&manifest.tables) {
        let path = from.join(file_of(table));
        let file = std::fs::File::open(&path)?;
        let lines = std::io::BufReader::new(file)
            .lines()
            .map(|l| l.map_err(tidepool_store::StoreError::internal));
        let pb = bar(Some(entry.rows), table.name);
        import_table(store, table, lines, |n| pb.set_position(n))
            .await
            .with_context(|| format!("importing {}", table.name))?;
        pb.finish();
    }
    store.import_finish().await?;
    // Verified: the store now exports exactly what was imported.
    for (table, entry) in TABLES.iter().zip(&manifest.tables) {
        let (rows, sha) = digest_table(store, table).await?;
        if rows != entry.rows || sha != entry.sha256 {
            bail!(
                "{} differs after the import ({rows} rows, digest {sha}; expected {} rows, {})",
                table.name,
                entry.rows,
                entry.sha256
            );
        }
    }
    let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
    println!(
        "imported {} tables, {rows} rows from {}; verified: the store exports the same bytes",
        manifest.tables.len(),
        from.display()
    );
    Ok(())
}

/// Rows per page when a network streams straight from one store into another.
const COPY_BATCH: usize = 10_000;

/// Streams every row of `table` from `from` into `to` in key order, reading the next page
/// while the previous one is written; `progress` hears how many rows are in so far.
async fn copy_table(
    from: &dyn Store,
    to: &dyn Store,
    table: &'static TableSpec,
    mut progress: impl FnMut(u64),
) -> Result<u64> {
    let positions = table.key_positions();
    let limit = COPY_BATCH as i64;
    let mut rows = from.export_rows(table, None, limit).await?;
    let mut n = 0u64;
    while !rows.is_empty() {
        let count = rows.len() as u64;
        let after: Option<Row> = (rows.len() == COPY_BATCH)
            .then(|| rows.last())
            .flatten()
            .map(|last| positions.iter().map(|&i| last[i].clone()).collect());
        let next = match after {
            Some(key) => {
                let (written, next) = tokio::join!(
                    to.import_rows(table, rows),
                    from.export_rows(table, Some(key), limit)
                );
                written?;
                next?
            }
            None => {
                to.import_rows(table, rows).await?;
                Vec::new()
            }
        };
        n += count;
        progress(n);
        rows = next;
    }
    Ok(n)
}

/// Row count and SHA-256 of one table's export lines.
async fn digest_table(store: &dyn Store, table: &'static TableSpec) -> Result<(u64, String)> {
    let mut digest = Sha256::new();
    let rows = export_table(store, table, |line| {
        digest.update(line.as_bytes());
        digest.update(b"\n");
        Ok(())
    })
    .await?;
    Ok((rows, hex::encode(digest.finalize())))
}

/// Moves a whole network from `from` into `to` (which must hold none yet), table by table
/// with no intermediate files, then verifies that both stores export the same bytes.
/// Returns the number of rows moved.
pub async fn copy(from: &dyn Store, to: &dyn Store) -> Result<u64> {
    to.import_begin().await?;
    let mut total = 0u64;
    for table in TABLES {
        let pb = bar(None, table.name);
        total += copy_table(from, to, table, |n| pb.set_position(n))
            .await
            .with_context(|| format!("copying {}", table.name))?;
        pb.finish();
    }
    to.import_finish().await?;
    eprintln!("verifying: both stores export the same bytes ...");
    for table in TABLES {
        let (a, b) = tokio::join!(digest_table(from, table), digest_table(to, table));
        let ((rows_a, sha_a), (rows_b, sha_b)) = (a?, b?);
        if (rows_a, &sha_a) != (rows_b, &sha_b) {
            bail!(
                "{} differs after the copy ({rows_b} rows, digest {sha_b}; expected {rows_a} rows, {sha_a})",
                table.name
            );
        }
    }
    Ok(total)
}
