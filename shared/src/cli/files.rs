//! `-f FILE|DIR|-`: reading manifests the way kubectl's `-f` does — a directory gives its
//! `*.yaml`, `*.yml` and `*.json` files, sorted (with `-R`, those of its subdirectories too), `-`
//! is stdin — parsed into documents ([`crate::documents`]).
//!
//! A file named on the command line (or stdin) must parse; a file found in a directory that is not
//! a Kubernetes manifest (a Helm `values.yaml`, a `package.json`) is skipped with one warning line.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::documents;
use crate::error::Error;

/// One source of documents: a file, or `-` for stdin.
#[derive(Debug, Clone)]
pub struct Source {
    /// How errors name it: the path, or `-`.
    pub origin: String,
    /// Its documents, as parsed (empty documents included, as `null`).
    pub documents: Vec<Value>,
}

/// The documents of every file the `-f` arguments name; `recursive` (`-R`) descends into the
/// subdirectories of a directory. Skipped files are named on `warn`.
pub fn read_manifests(
    paths: &[PathBuf],
    recursive: bool,
    warn: &mut dyn Write,
) -> Result<Vec<Source>, Error> {
    let mut sources = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| {
                Error::Usage(format!(
                    "cannot read stdin: {e}; pipe YAML or JSON manifests into -f -"
                ))
            })?;
            sources.push(named("-".into(), &text)?);
        } else if path.is_dir() {
            let mut files = Vec::new();
            manifest_files(path, recursive, &mut files)?;
            for file in files {
                let origin = file.display().to_string();
                let text = std::fs::read_to_string(&file).map_err(|e| unreadable(&file, &e))?;
                match manifest(&text) {
                    Ok(documents) => sources.push(Source { origin, documents }),
                    Err(reason) => writeln!(
                        warn,
                        "warning: skipping {origin}: not a Kubernetes manifest ({reason})"
                    )?,
                }
            }
        } else {
            let text = std::fs::read_to_string(path).map_err(|e| unreadable(path, &e))?;
            sources.push(named(path.display().to_string(), &text)?);
        }
    }
    Ok(sources)
}

/// A source named on the command line: it must parse (its objects are checked by whoever reads
/// them, with the document's number in the error).
fn named(origin: String, text: &str) -> Result<Source, Error> {
    let documents = documents::parse(text).map_err(|e| Error::Usage(format!("{origin}: {e}")))?;
    Ok(Source { origin, documents })
}

/// The documents of a file found in a directory, if it is a Kubernetes manifest: it parses, and
/// every document is an object with `apiVersion` and `kind` (or a list of such).
fn manifest(text: &str) -> Result<Vec<Value>, String> {
    let docs = documents::parse(text)?;
    for doc in &docs {
        documents::objects(doc.clone())?;
    }
    Ok(docs)
}

/// The manifest files of `dir`, sorted; with `recursive`, its subdirectories' too (each
/// directory's files before its subdirectories').
fn manifest_files(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| unreadable(dir, &e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    out.extend(
        entries
            .iter()
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
            })
            .cloned(),
    );
    if recursive {
        for sub in entries.iter().filter(|p| p.is_dir()) {
            manifest_files(sub, true, out)?;
        }
    }
    Ok(())
}

fn unreadable(path: &Path, e: &std::io::Error) -> Error {
    Error::Usage(format!(
        "cannot read {}: {e}; check the path given to -f",
        path.display()
    ))
}
