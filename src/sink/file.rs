//! NDJSON files, rotated by size: `kubegate.ndjson` is written, and on
//! rotation becomes `kubegate.ndjson.1` (older ones shift up), as
//! filebeat's file output names them. At most `max_files` rotated files
//! are kept.

use super::{Encoded, SinkError};
use crate::selfmetrics::SelfMetrics;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const FILE_NAME: &str = "kubegate.ndjson";

pub struct FileSink {
    dir: PathBuf,
    max_file_size: u64,
    max_files: u32,
    writer: BufWriter<File>,
    size: u64,
    metrics: Arc<SelfMetrics>,
    /// Scratch space for one line's `@metadata` head.
    head: Vec<u8>,
}

impl FileSink {
    pub fn open(
        dir: &Path,
        max_file_size: u64,
        max_files: u32,
        metrics: Arc<SelfMetrics>,
    ) -> Result<Self, SinkError> {
        let err = |source| SinkError::File {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| SinkError::File {
                path: path.display().to_string(),
                source,
            })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(FileSink {
            dir: dir.to_owned(),
            max_file_size,
            max_files,
            writer: BufWriter::with_capacity(256 * 1024, file),
            size,
            metrics,
            head: Vec::new(),
        })
    }

    /// False when the write failed (logged); the caller keeps the records.
    pub fn write(&mut self, batch: Vec<Encoded>) -> bool {
        let n = batch.len() as u64;
        let result = self.write_all(&batch);
        let m = &self.metrics;
        match result {
            Ok(()) => {
                m.sink_documents
                    .with_label_values(&["file", "written"])
                    .inc_by(n);
                m.sink_requests
                    .with_label_values(&["file", "success"])
                    .inc();
                true
            }
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, documents = n, "cannot write NDJSON file; will try again");
                m.sink_requests
                    .with_label_values(&["file", "failure"])
                    .inc();
                false
            }
        }
    }

    fn write_all(&mut self, batch: &[Encoded]) -> std::io::Result<()> {
        let mut head = std::mem::take(&mut self.head);
        for doc in batch {
            // The document is written from its own buffer, behind a small
            // head: assembling each line first was one more copy of every
            // document.
            head.clear();
            let body = metadata_head(doc, &mut head);
            let len = (head.len() + body.len() + 1) as u64;
            if self.size > 0 && self.size + len > self.max_file_size {
                self.rotate()?;
            }
            self.writer.write_all(&head)?;
            self.writer.write_all(body)?;
            self.writer.write_all(b"\n")?;
            self.size += len;
        }
        self.head = head;
        self.writer.flush()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.writer.flush()?;
        let name = |i: u32| self.dir.join(format!("{FILE_NAME}.{i}"));
        let _ = std::fs::remove_file(name(self.max_files));
        for i in (1..self.max_files).rev() {
            if name(i).exists() {
                std::fs::rename(name(i), name(i + 1))?;
            }
        }
        let current = self.dir.join(FILE_NAME);
        if self.max_files == 0 {
            std::fs::remove_file(&current)?;
        } else {
            std::fs::rename(&current, name(1))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&current)?;
        self.writer = BufWriter::with_capacity(256 * 1024, file);
        self.size = 0;
        self.metrics.file_rotations.inc();
        Ok(())
    }
}

/// The document plus filebeat-style `@metadata` (index and `_id`), so a
/// file can be replayed into Elasticsearch without losing identity: fills
/// `head` and returns the part of the document that follows it.
fn metadata_head<'d>(doc: &'d Encoded, head: &mut Vec<u8>) -> &'d [u8] {
    // Documents are JSON objects: splice `"@metadata":{...},` after `{`.
    let json = doc.json();
    if json.len() > 2 && json[0] == b'{' {
        head.extend_from_slice(b"{\"@metadata\":{\"_id\":");
        crate::ecs::push_json_str(head, doc.id());
        head.extend_from_slice(b",\"index\":");
        crate::ecs::push_json_str(head, doc.index());
        head.extend_from_slice(b"},");
        &json[1..]
    } else {
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(i: usize) -> Encoded {
        Encoded::from_parts(
            &format!("id{i}"),
            "metrics-x-default",
            format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(100)).as_bytes(),
        )
    }

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(SelfMetrics::new());
        let mut sink = FileSink::open(dir.path(), 1024, 2, metrics.clone()).unwrap();
        sink.write((0..40).map(doc).collect());
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["kubegate.ndjson", "kubegate.ndjson.1", "kubegate.ndjson.2"]
        );
        for name in &names {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(text.len() <= 1024, "{name} is {} bytes", text.len());
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert!(v["@metadata"]["_id"].as_str().unwrap().starts_with("id"));
            }
        }
        // The newest document is in the current file, the oldest kept in .2.
        let current = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(current.lines().last().unwrap().contains("\"n\":39"));
        assert!(metrics.file_rotations.get() >= 4);
        assert_eq!(
            metrics
                .sink_documents
                .with_label_values(&["file", "written"])
                .get(),
            40
        );
    }

    #[test]
    fn appends_to_an_existing_file_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(SelfMetrics::new());
        FileSink::open(dir.path(), 1 << 20, 2, metrics.clone())
            .unwrap()
            .write(vec![doc(1)]);
        FileSink::open(dir.path(), 1 << 20, 2, metrics)
            .unwrap()
            .write(vec![doc(2)]);
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(text.lines().count(), 2);
    }
}
