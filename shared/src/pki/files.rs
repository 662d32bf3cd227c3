//! Certificates and keys on disk: reading PEM files, the six files of a bundle, and writing them
//! all or nothing, never half-written, keys private.
//!
//! Each file is written to a temporary file in the target directory (created `0600` for keys,
//! `0644` for certificates, before any byte is written), flushed to disk, and renamed over its
//! final name only after every temporary file is complete. Existing files are left alone unless
//! `force` is set; a failure removes the temporary files and leaves the directory as it was.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::PkiError;
use super::issue::Bundle;

/// The names of the files `kubectl mtls-certs gen` writes, in order.
pub const BUNDLE_FILES: [&str; 6] = [
    "ca.crt",
    "ca.key",
    "server.crt",
    "server.key",
    "client.crt",
    "client.key",
];

/// The six files of a bundle, named as [`BUNDLE_FILES`] (keys marked secret: mode 0600).
pub fn bundle_files(bundle: &Bundle) -> Vec<OutputFile> {
    [
        (&bundle.ca.cert, &bundle.ca.key),
        (&bundle.server.cert, &bundle.server.key),
        (&bundle.client.cert, &bundle.client.key),
    ]
    .into_iter()
    .zip(BUNDLE_FILES.chunks(2))
    .flat_map(|((cert, key), names)| {
        [
            OutputFile {
                name: names[0].into(),
                contents: cert.to_pem(),
                secret: false,
            },
            OutputFile {
                name: names[1].into(),
                contents: key.to_pem(),
                secret: true,
            },
        ]
    })
    .collect()
}

/// Reads a text file (PEM), with the path in the error.
pub fn read_file(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|e| PkiError::io("read", path, e))
}

/// One file to write.
#[derive(Debug)]
pub struct OutputFile {
    /// File name inside the output directory, e.g. `server.key`.
    pub name: String,
    /// The bytes (PEM text).
    pub contents: String,
    /// Whether it holds a private key (mode `0600`).
    pub secret: bool,
}

/// Writes `files` into `dir` (created if missing). Refuses, before writing anything, when any of
/// them exists and `force` is false. Returns the final paths in the order given.
pub fn write_files(
    dir: &Path,
    files: &[OutputFile],
    force: bool,
) -> Result<Vec<PathBuf>, PkiError> {
    fs::create_dir_all(dir).map_err(|e| PkiError::io("create directory", dir, e))?;
    if !force {
        let existing: Vec<String> = files
            .iter()
            .filter(|f| dir.join(&f.name).symlink_metadata().is_ok())
            .map(|f| f.name.clone())
            .collect();
        if !existing.is_empty() {
            return Err(PkiError::Exists {
                dir: dir.to_path_buf(),
                files: existing,
            });
        }
    }
    let mut temps: Vec<PathBuf> = Vec::with_capacity(files.len());
    let result = (|| {
        for f in files {
            let tmp = dir.join(format!(".{}.tmp-{}", f.name, std::process::id()));
            temps.push(tmp.clone());
            write_new(&tmp, f.contents.as_bytes(), f.secret)?;
        }
        // Every temporary file is complete: now swap them in.
        for (f, tmp) in files.iter().zip(&temps) {
            let target = dir.join(&f.name);
            fs::rename(tmp, &target).map_err(|e| PkiError::io("write", &target, e))?;
        }
        sync_dir(dir);
        Ok(files.iter().map(|f| dir.join(&f.name)).collect())
    })();
    if result.is_err() {
        for tmp in &temps {
            let _ = fs::remove_file(tmp);
        }
    }
    result
}

fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PkiError> {
    let _ = fs::remove_file(path); // a stale temp file from a crashed run
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file: File = options
        .open(path)
        .map_err(|e| PkiError::io("write", parent_or(path), e))?;
    #[cfg(unix)]
    {
        // The umask may have narrowed the mode; it must never have widened a key's.
        use std::os::unix::fs::PermissionsExt;
        let mode = if secret { 0o600 } else { 0o644 };
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| PkiError::io("set permissions on", path, e))?;
    }
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| PkiError::io("write", path, e))
}

fn parent_or(path: &Path) -> &Path {
    path.parent().unwrap_or(path)
}

fn sync_dir(dir: &Path) {
    // Best effort: makes the renames durable on file systems that need it.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<OutputFile> {
        vec![
            OutputFile {
                name: "a.crt".into(),
                contents: "cert".into(),
                secret: false,
            },
            OutputFile {
                name: "a.key".into(),
                contents: "key".into(),
                secret: true,
            },
        ]
    }

    #[test]
    fn writes_keys_private_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new/sub");
        let paths = write_files(&out, &files(), false).unwrap();
        assert_eq!(paths.len(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&paths[0]), 0o644);
            assert_eq!(mode(&paths[1]), 0o600);
        }
        fs::write(&paths[1], "user edit").unwrap();
        let err = write_files(&out, &files(), false).unwrap_err();
        assert!(
            matches!(&err, PkiError::Exists { files, .. } if files.len() == 2),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&paths[1]).unwrap(), "user edit");
        write_files(&out, &files(), true).unwrap();
        assert_eq!(fs::read_to_string(&paths[1]).unwrap(), "key");
        let leftovers: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn unwritable_directory_is_a_clear_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        fs::write(&file, "x").unwrap();
        // A path under a regular file can never be a directory, even for root.
        let err = write_files(&file.join("out"), &files(), false).unwrap_err();
        assert!(matches!(err, PkiError::Io { .. }), "{err}");
        assert!(
            err.to_string().starts_with("cannot create directory"),
            "{err}"
        );
    }
}
