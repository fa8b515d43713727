//! A directory of batches waiting for a remote store that is down: one file per batch, written
//! to a temporary name and renamed (a crash never leaves half a batch), replayed oldest first,
//! removed once the store took it. Bounded in size; past the bound the oldest batches go, with
//! a warning, rather than filling the disk.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    seq: AtomicU64,
}

impl Spool {
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> std::io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            max_bytes,
            seq: AtomicU64::new(0),
        })
    }

    /// Batches waiting, oldest first.
    pub fn pending(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "batch"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    pub fn is_empty(&self) -> bool {
        self.pending().is_empty()
    }

    /// Keeps `body` for later; returns how many old batches had to go to stay in bounds.
    pub fn push(&self, body: &[u8]) -> std::io::Result<usize> {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = format!("{nanos:020}-{}-{seq:08}", std::process::id());
        let temp = self.dir.join(format!("{name}.tmp"));
        fs::write(&temp, body)?;
        fs::rename(&temp, self.dir.join(format!("{name}.batch")))?;
        Ok(self.trim())
    }

    pub fn read(&self, batch: &Path) -> std::io::Result<Vec<u8>> {
        fs::read(batch)
    }

    pub fn remove(&self, batch: &Path) {
        if let Err(e) = fs::remove_file(batch) {
            tracing::warn!(batch = %batch.display(), error = %e, "could not remove a replayed batch");
        }
    }

    fn trim(&self) -> usize {
        let files = self.pending();
        let sizes: Vec<u64> = files
            .iter()
            .map(|f| fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .collect();
        let mut total: u64 = sizes.iter().sum();
        let mut dropped = 0;
        for (file, size) in files.iter().zip(sizes) {
            if total <= self.max_bytes {
                break;
            }
            if fs::remove_file(file).is_ok() {
                total -= size;
                dropped += 1;
            }
        }
        if dropped > 0 {
            tracing::warn!(dir = %self.dir.display(), dropped, "spool full; oldest batches dropped");
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("wework-spool-{}", uuid::Uuid::new_v4().simple()))
    }

    #[test]
    fn batches_replay_in_order_and_go_once_removed() {
        let spool = Spool::open(temp_dir(), 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        assert!(spool.is_empty());
        for body in [&b"one"[..], b"two", b"three"] {
            assert_eq!(spool.push(body).ok(), Some(0));
        }
        let pending = spool.pending();
        let bodies: Vec<Vec<u8>> = pending
            .iter()
            .map(|p| spool.read(p).unwrap_or_default())
            .collect();
        assert_eq!(
            bodies,
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        spool.remove(&pending[0]);
        assert_eq!(spool.pending().len(), 2);
    }

    #[test]
    fn past_the_bound_the_oldest_batches_go() {
        let spool = Spool::open(temp_dir(), 10).unwrap_or_else(|e| panic!("{e}"));
        spool.push(b"123456").ok();
        assert_eq!(spool.push(b"abcdef").ok(), Some(1));
        let left = spool.pending();
        assert_eq!(left.len(), 1);
        assert_eq!(spool.read(&left[0]).ok(), Some(b"abcdef".to_vec()));
    }
}
