//! NDJSON file sink with size-based rotation — the embedded default.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{BoxFuture, Payload, SendOutcome, Sink};
use crate::error::{ConfigError, Error, ErrorKind};
use crate::record::{Record, ServiceInfo, ServiceJson, encode_json_line_with};

/// Default size at which the file rotates: 64 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Default number of rotated files kept beside the live one: 5.
pub const DEFAULT_MAX_FILES: usize = 5;
/// Default Unix mode of a log file the sink creates: `0o600` (owner read/write
/// only). Log records may hold personal data; widen it with
/// [`FileSinkBuilder::file_mode`].
pub const DEFAULT_FILE_MODE: u32 = 0o600;

/// Builder for [`FileSink`].
#[derive(Debug, Clone)]
#[must_use]
pub struct FileSinkBuilder {
    path: PathBuf,
    max_file_bytes: u64,
    max_files: usize,
    name: String,
    file_mode: u32,
}

impl FileSinkBuilder {
    /// Unix permission bits of log files the sink creates (the live file and each
    /// fresh file after a rotation). Default [`DEFAULT_FILE_MODE`] (`0o600`); e.g.
    /// `0o640` lets a log shipper in the file's group read it. The process umask
    /// still applies; an existing file keeps its mode. Ignored on other platforms.
    pub fn file_mode(mut self, mode: u32) -> Self {
        self.file_mode = mode;
        self
    }

    /// Rotate when the live file would grow past `bytes` (default 64 MiB). A single
    /// batch larger than this is still written whole, into a fresh file.
    pub fn max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = bytes;
        self
    }

    /// Keep at most `n` rotated files (`<path>.1` newest … `<path>.n` oldest); older
    /// ones are deleted. Default 5; `0` keeps none (the live file is truncated on
    /// rotation).
    pub fn max_files(mut self, n: usize) -> Self {
        self.max_files = n;
        self
    }

    /// Sink name in stats (default `"file"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Creates the parent directory and opens the file for appending.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for setting `data_dir` when the directory cannot be
    /// created or the file cannot be opened for writing (the OS error is in the
    /// reason), or for `max_file_bytes` when it is zero.
    pub fn build(self) -> Result<FileSink, ConfigError> {
        if self.max_file_bytes == 0 {
            return Err(ConfigError::invalid(
                "max_file_bytes",
                0,
                "must be greater than zero",
            ));
        }
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| {
                ConfigError::invalid(
                    "data_dir",
                    dir.display(),
                    format!("cannot create directory: {e}"),
                )
            })?;
        }
        let file = open_append(&self.path, self.file_mode).map_err(|e| {
            ConfigError::invalid(
                "data_dir",
                self.path.display(),
                format!("cannot open log file: {e}"),
            )
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(FileSink {
            path: self.path,
            max_file_bytes: self.max_file_bytes,
            max_files: self.max_files,
            name: self.name,
            file_mode: self.file_mode,
            file,
            size,
            torn: false,
            line_bytes: 0,
            #[cfg(test)]
            fail_after: None,
        })
    }
}

/// Writes one JSON record per line (NDJSON) to a file, rotating by size.
///
/// Each batch is one `write` call, so lines from one batch are never interleaved with
/// another writer's. The line format is [`encode_json_line`](crate::record::encode_json_line).
///
/// A write that fails part-way (disk full) is cut back to the last complete line
/// before the batch is retried, so a retry never leaves a fragment glued to a
/// duplicate. The sink assumes it is the only writer of its file.
///
/// # Example
/// ```
/// # fn main() -> Result<(), loggier_core::ConfigError> {
/// let dir = std::env::temp_dir().join("loggier-doc-file-sink");
/// let sink = loggier_core::FileSink::builder(dir.join("app.ndjson"))
///     .max_file_bytes(8 * 1024 * 1024)
///     .max_files(3)
///     .build()?;
/// assert_eq!(sink.path(), dir.join("app.ndjson"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    max_file_bytes: u64,
    max_files: usize,
    name: String,
    file_mode: u32,
    file: File,
    /// Bytes of complete lines in the live file.
    size: u64,
    /// A failed write left a fragment that could not be cut off: the next write
    /// starts with a newline so the fragment stays a line of its own.
    torn: bool,
    /// Average line length of the last batch plus a margin, bytes: the size the
    /// next batch's buffer starts with.
    line_bytes: usize,
    /// Test hook: the next append writes this many bytes, then fails like ENOSPC.
    #[cfg(test)]
    fail_after: Option<usize>,
}

impl FileSink {
    /// A builder writing to `path` (created with its parent directories on `build`).
    pub fn builder(path: impl Into<PathBuf>) -> FileSinkBuilder {
        FileSinkBuilder {
            path: path.into(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_files: DEFAULT_MAX_FILES,
            name: "file".to_string(),
            file_mode: DEFAULT_FILE_MODE,
        }
    }

    /// The live file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if self.max_files == 0 {
            self.file = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&self.path)?;
            self.file = open_append(&self.path, self.file_mode)?;
        } else {
            let _ = fs::remove_file(self.rotated(self.max_files));
            for n in (1..self.max_files).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            fs::rename(&self.path, self.rotated(1))?;
            self.file = open_append(&self.path, self.file_mode)?;
        }
        self.size = 0;
        Ok(())
    }

    fn write_payload(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let len = bytes.len() as u64;
        if self.size > 0 && self.size + len > self.max_file_bytes {
            self.rotate()?;
        }
        if self.torn {
            if let Err(e) = self.append(b"\n") {
                self.cut_back();
                return Err(e);
            }
            self.size += 1;
            self.torn = false;
        }
        match self.append(bytes) {
            Ok(()) => {
                self.size += len;
                Ok(())
            }
            Err(e) => {
                self.cut_back();
                Err(e)
            }
        }
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(n) = self.fail_after.take() {
            self.file.write_all(&bytes[..n.min(bytes.len())])?;
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space left on device (injected)",
            ));
        }
        self.file.write_all(bytes)
    }

    /// After a failed append: truncate the file back to the last complete line
    /// (`size`). When even that fails, note the fragment so the next write starts
    /// on a fresh line.
    fn cut_back(&mut self) {
        if self.file.set_len(self.size).is_err() {
            match self.file.metadata() {
                Ok(m) if m.len() == self.size => {}
                Ok(m) => {
                    self.size = m.len();
                    self.torn = true;
                }
                // The real length is unknown: assume a fragment is there.
                Err(_) => self.torn = true,
            }
        }
    }
}

fn open_append(path: &Path, mode: u32) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    o.open(path)
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    /// One NDJSON line per record, in one payload.
    fn encode(
        &mut self,
        records: &[Arc<Record>],
        service: &ServiceInfo,
    ) -> Result<Vec<Payload>, Error> {
        // Room for lines the size of the last batch's (no walk over every record's
        // context to estimate it); the buffer grows if they are longer.
        let mut out = Vec::with_capacity(records.len() * self.line_bytes.max(128));
        let failed = |e| Error::with_source(ErrorKind::Encode, "json encoding failed", e);
        let service = ServiceJson::new(service).map_err(failed)?;
        for r in records {
            encode_json_line_with(r, &service, &mut out).map_err(failed)?;
        }
        self.line_bytes = out.len() / records.len().max(1) + 16;
        Ok(vec![Payload::new(out, records.len() as u32)])
    }

    fn send<'a>(&'a mut self, payload: &'a Payload) -> BoxFuture<'a, SendOutcome> {
        let outcome = match self.write_payload(&payload.bytes) {
            Ok(()) => SendOutcome::Delivered,
            Err(e) => SendOutcome::Retry {
                reason: format!("write to {} failed: {e}", self.path.display()),
                retry_after: None,
            },
        };
        Box::pin(std::future::ready(outcome))
    }

    fn is_local(&self) -> bool {
        true
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        let _ = self.file.flush();
        let _ = self.file.sync_data();
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Level;

    fn svc() -> ServiceInfo {
        ServiceInfo {
            service: "t".into(),
            environment: "test".into(),
            ..ServiceInfo::default()
        }
    }

    fn write(sink: &mut FileSink, msg: &str) {
        let recs = [Arc::new(Record::new(Level::Info, msg))];
        let payloads = sink.encode(&recs, &svc()).expect("encodes");
        for p in &payloads {
            let out = futures_ready(sink.send(p));
            assert_eq!(out, SendOutcome::Delivered);
        }
    }

    #[test]
    fn shared_records_encode_as_their_json_lines_and_are_left_as_they_were() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = FileSink::builder(dir.path().join("a.ndjson"))
            .build()
            .expect("sink");
        let recs = vec![
            Record::new(Level::Info, "one").with_field("k", 1),
            Record::new(Level::Warning, "two \"q\"").with_tag("t"),
        ];
        let mut expected = Vec::new();
        for r in &recs {
            crate::record::encode_json_line(r, &svc(), &mut expected).expect("encodes");
        }
        // One record still held elsewhere (another sink's batch), one not; through a
        // `Box` as the pipeline holds sinks.
        let held = Arc::new(recs[0].clone());
        let shared = vec![Arc::clone(&held), Arc::new(recs[1].clone())];
        let mut sink: Box<dyn Sink> = Box::new(sink);
        let out = sink.encode(&shared, &svc()).expect("encodes");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].records, 2);
        assert_eq!(out[0].bytes, expected);
        assert_eq!(*held, recs[0], "a shared record is left as it was");
    }

    fn futures_ready<T>(f: BoxFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.ndjson");
        let mut sink = FileSink::builder(&path)
            .max_file_bytes(300)
            .max_files(2)
            .build()
            .expect("build");
        for i in 0..12 {
            write(
                &mut sink,
                &format!("message number {i:02} padded to make lines longer"),
            );
        }
        assert!(path.exists());
        assert!(dir.path().join("app.ndjson.1").exists());
        assert!(dir.path().join("app.ndjson.2").exists());
        assert!(!dir.path().join("app.ndjson.3").exists());
        // Every surviving line is a whole JSON object and the newest is in the live file.
        let live = fs::read_to_string(&path).expect("read");
        let last = live.lines().last().expect("a line");
        let v: serde_json::Value = serde_json::from_str(last).expect("json line");
        assert_eq!(
            v["message"],
            "message number 11 padded to make lines longer"
        );
        for f in ["app.ndjson", "app.ndjson.1", "app.ndjson.2"] {
            let text = fs::read_to_string(dir.path().join(f)).expect("read");
            assert!(text.len() <= 300 + 200, "{f} is {} bytes", text.len());
            for line in text.lines() {
                serde_json::from_str::<serde_json::Value>(line).expect("whole json line");
            }
        }
    }

    #[test]
    fn item8_a_partial_write_is_cut_back_before_the_retry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.ndjson");
        let mut sink = FileSink::builder(&path).build().expect("build");
        write(&mut sink, "before");
        let recs = [
            Arc::new(Record::new(Level::Info, "first of the batch")),
            Arc::new(Record::new(Level::Info, "second of the batch")),
        ];
        let payload = sink.encode(&recs, &svc()).expect("encodes").remove(0);
        // The disk fills up 30 bytes into the batch: a real partial write.
        sink.fail_after = Some(30);
        let out = futures_ready(sink.send(&payload));
        assert!(
            matches!(out, SendOutcome::Retry { ref reason, .. } if reason.contains("no space")),
            "{out:?}"
        );
        // The pipeline retries the same payload.
        assert_eq!(futures_ready(sink.send(&payload)), SendOutcome::Delivered);
        write(&mut sink, "after");
        let text = fs::read_to_string(&path).expect("read");
        let messages: Vec<String> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("torn line {l:?}: {e}\n{text}"));
                v["message"].as_str().expect("message").to_string()
            })
            .collect();
        assert_eq!(
            messages,
            [
                "before",
                "first of the batch",
                "second of the batch",
                "after"
            ]
        );
        assert_eq!(
            sink.size,
            fs::metadata(&path).expect("meta").len(),
            "tracked size"
        );
    }

    #[cfg(unix)]
    #[test]
    fn item11_log_files_are_created_private_unless_widened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        let private = dir.path().join("private.ndjson");
        let mut sink = FileSink::builder(&private)
            .max_file_bytes(200)
            .build()
            .expect("build");
        assert_eq!(mode(&private), 0o600);
        for i in 0..4 {
            write(
                &mut sink,
                &format!("line {i} padded to rotate the file soon enough"),
            );
        }
        assert!(dir.path().join("private.ndjson.1").exists());
        assert_eq!(mode(&private), 0o600, "a fresh file after rotation");
        let shared = dir.path().join("shared.ndjson");
        let _sink = FileSink::builder(&shared)
            .file_mode(0o640)
            .build()
            .expect("build");
        assert_eq!(mode(&shared), 0o640);
    }

    #[test]
    fn unwritable_dir_is_a_config_error_naming_data_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("not-a-dir");
        fs::write(&blocker, b"x").expect("write");
        let err = FileSink::builder(blocker.join("sub/app.ndjson"))
            .build()
            .expect_err("must fail");
        assert_eq!(err.setting(), "data_dir");
    }
}
