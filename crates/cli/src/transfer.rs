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
use tidepool_store::transfer::{TABLES, TableSpec, export_table, import_table};

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
        let mut digest = Sha256::new();
        let rows = export_table(store, table, |line| {
            digest.update(line.as_bytes());
            digest.update(b"\n");
            Ok(())
        })
        .await?;
        let sha = hex::encode(digest.finalize());
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
