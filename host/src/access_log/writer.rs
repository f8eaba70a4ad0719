//! Where the access log goes: standard output, or a file rotated by size (`<path>.1` the
//! newest of the old ones, up to `keep_files`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::AccessRecord;
use crate::config::AccessLogConfig;

/// The log's destination.
pub(super) enum Output {
    Stdout,
    File {
        path: PathBuf,
        file: File,
        size: u64,
        max: u64,
        keep: usize,
    },
}

impl Output {
    /// Standard output, or the file `config` names (appended to; created owner-writable).
    pub(super) fn open(config: &AccessLogConfig, base_dir: &Path) -> anyhow::Result<Self> {
        let Some(path) = &config.path else {
            return Ok(Self::Stdout);
        };
        let path = base_dir.join(path);
        let file = append(&path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self::File {
            path,
            file,
            size,
            max: config.max_file_bytes,
            keep: config.keep_files,
        })
    }

    /// Writes one batch; a failure is logged (the records are lost, the gateway goes on).
    pub(super) fn write(&mut self, batch: &[u8]) {
        let result = match self {
            Self::Stdout => std::io::stdout().lock().write_all(batch),
            Self::File { file, size, .. } => {
                *size += batch.len() as u64;
                file.write_all(batch)
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "the access log cannot be written");
        }
        if let Self::File {
            path,
            file,
            size,
            max,
            keep,
        } = self
            && *size >= *max
        {
            match rotate(path, *keep) {
                Ok(new) => (*file, *size) = (new, 0),
                Err(e) => tracing::warn!(error = %e, "the access log cannot be rotated"),
            }
        }
    }
}

/// `path` opened for appending, created if need be.
fn append(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("access_log.path {}", path.display()))
}

/// Shifts `path.N` to `path.N+1` (the oldest beyond `keep` removed), `path` to `path.1`,
/// and opens a new `path`.
fn rotate(path: &Path, keep: usize) -> anyhow::Result<File> {
    let numbered = |n: usize| PathBuf::from(format!("{}.{n}", path.display()));
    if keep == 0 {
        std::fs::remove_file(path)?;
        return append(path);
    }
    let _ = std::fs::remove_file(numbered(keep));
    for n in (1..keep).rev() {
        let _ = std::fs::rename(numbered(n), numbered(n + 1));
    }
    std::fs::rename(path, numbered(1))?;
    append(path)
}

/// Appends `record` as one JSON line to `batch`, its time written out.
pub(super) fn encode(batch: &mut Vec<u8>, mut record: Box<AccessRecord>) {
    record.time = rfc3339(record.at_ms);
    if serde_json::to_writer(&mut *batch, &record).is_ok() {
        batch.push(b'\n');
    }
}

/// `ms` since the Unix epoch as RFC 3339 in UTC, with milliseconds.
fn rfc3339(ms: u64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(1_764_700_000_123), "2025-12-02T18:26:40.123Z");
    }

    #[test]
    fn a_full_file_is_rotated_and_the_oldest_dropped() {
        let dir = std::env::temp_dir().join(format!("weir-access-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let config = AccessLogConfig {
            path: Some(path.clone()),
            max_file_bytes: 4096,
            keep_files: 2,
            ..AccessLogConfig::default()
        };
        let mut output = Output::open(&config, Path::new("/")).unwrap();
        for n in 0..4u8 {
            output.write(&vec![b'0' + n; 4096]);
        }
        let read = |p: &Path| std::fs::read(p).unwrap_or_default();
        assert!(read(&path).is_empty(), "a new file after the last rotation");
        assert_eq!(read(&dir.join("access.log.1")), vec![b'3'; 4096]);
        assert_eq!(read(&dir.join("access.log.2")), vec![b'2'; 4096]);
        assert!(
            !dir.join("access.log.3").exists(),
            "only keep_files are kept"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
