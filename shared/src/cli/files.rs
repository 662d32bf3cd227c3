//! `-f FILE|DIR|-`: reading manifest files the way kubectl's `-f` does (a directory gives its
//! `*.yaml`, `*.yml` and `*.json` files, sorted; `-` is stdin).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// The text of every file the `-f` arguments name, with the name to use in errors.
pub fn read_manifests(paths: &[PathBuf]) -> Result<Vec<(String, String)>, Error> {
    let mut texts = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| {
                Error::Usage(format!(
                    "cannot read stdin: {e}; pipe YAML or JSON manifests into -f -"
                ))
            })?;
            texts.push(("-".to_string(), text));
        } else if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| unreadable(path, &e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
                })
                .collect();
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file).map_err(|e| unreadable(&file, &e))?;
                texts.push((file.display().to_string(), text));
            }
        } else {
            let text = std::fs::read_to_string(path).map_err(|e| unreadable(path, &e))?;
            texts.push((path.display().to_string(), text));
        }
    }
    Ok(texts)
}

fn unreadable(path: &Path, e: &std::io::Error) -> Error {
    Error::Usage(format!(
        "cannot read {}: {e}; check the path given to -f",
        path.display()
    ))
}
