//! [`BlobStore`] over a directory: the blob `a/b/c.json` is the file `<root>/a/b/c.json`.
//! Writes are atomic (a temporary file under `<root>/~tmp/`, synced, then renamed; `~` is
//! not allowed in blob keys, so temporaries are never listed), and each `put` sends an
//! [`ObjectCreated`] to the notify queue like an S3 → SQS notification.
//!
//! A compare-and-swap (`put_if_match`) compares the blob's content etag and renames
//! while holding the store's publish lock and an exclusive lock on `<root>/~tmp/cas.lock`,
//! so that racing writers in this process and in other processes on the same directory
//! have exactly one winner.
//!
//! Keys are validated by [`BlobKey`]; as defence in depth every path is also checked to
//! stay inside the root, after resolving symbolic links.
//!
//! Sequencers are nanoseconds since the epoch, bumped to stay strictly increasing within
//! the process, as 16 hex digits: a later write has a greater sequencer, across restarts
//! too as long as the system clock does not step back past the previous process's writes.

use async_trait::async_trait;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use vaia_core::ids::BlobKey;
use vaia_core::messages::ObjectCreated;
use vaia_core::ports::{
    content_etag, BlobMeta, BlobStore, Bounded, PortError, PortResult, Queue, Tagged,
};

/// The directory of in-progress writes, inside the root.
/// Where writes are staged before they are linked into place (not a blob).
pub(crate) const TMP_DIR: &str = "~tmp";

/// The file compare-and-swap writers lock, across processes, inside [`TMP_DIR`].
const CAS_LOCK: &str = "cas.lock";

/// How a write publishes its temporary file.
#[derive(Debug, Clone)]
enum Mode {
    /// Replace whatever is there.
    Replace,
    /// Only if nothing is there.
    Absent,
    /// Only if the blob there has this etag.
    Match(String),
}

pub struct FsBlobStore {
    notify: Option<(Arc<dyn Queue>, String)>,
    inner: Arc<Inner>,
}

/// What the blocking file work needs.
struct Inner {
    root: PathBuf,
    /// Serialises rename + sequencer so that a later write of a key gets a later sequencer.
    publish: Mutex<()>,
    last_sequencer: AtomicU64,
    temp_counter: AtomicU64,
}

impl std::fmt::Debug for FsBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsBlobStore")
            .field("root", &self.inner.root)
            .field("notify", &self.notify.as_ref().map(|(_, name)| name))
            .finish()
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> PortError {
    PortError::Unavailable(format!("{what} {}: {e}", path.display()))
}

impl FsBlobStore {
    /// Opens (creating) the blob directory `root`. Each `put` is announced to `notify`
    /// (queue, queue name) when given.
    pub fn open(
        root: impl Into<PathBuf>,
        notify: Option<(Arc<dyn Queue>, String)>,
    ) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join(TMP_DIR))?;
        let root = root.canonicalize()?;
        Ok(Self {
            notify,
            inner: Arc::new(Inner {
                root,
                publish: Mutex::new(()),
                last_sequencer: AtomicU64::new(0),
                temp_counter: AtomicU64::new(0),
            }),
        })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> PortResult<T> + Send + 'static,
    ) -> PortResult<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| PortError::Unavailable(format!("blob task failed: {e}")))?
    }
}

impl Inner {
    /// The path of `key`, refused if it would leave the root.
    fn path(&self, key: &str) -> PortResult<PathBuf> {
        let rel = Path::new(key);
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(PortError::Invalid(format!(
                "blob key {key:?} escapes the store"
            )));
        }
        let path = self.root.join(rel);
        if !path.starts_with(&self.root) {
            return Err(PortError::Invalid(format!(
                "blob key {key:?} escapes the store"
            )));
        }
        Ok(path)
    }

    /// Refuses `path` if, with symbolic links resolved, it is outside the root.
    fn check_inside(&self, path: &Path) -> PortResult<()> {
        let real = path
            .canonicalize()
            .map_err(|e| io_error("cannot resolve", path, e))?;
        if real.starts_with(&self.root) {
            Ok(())
        } else {
            Err(PortError::Invalid(format!(
                "{} resolves outside the blob store",
                path.display()
            )))
        }
    }

    fn next_sequencer(&self) -> String {
        let now = chrono::Utc::now()
            .timestamp_nanos_opt()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        let prev = self
            .last_sequencer
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last.saturating_add(1)))
            })
            .unwrap_or(now);
        format!("{:016X}", now.max(prev.saturating_add(1)))
    }

    /// Writes through a temporary file, then publishes it: `rename` replaces any blob at
    /// the key; with `exclusive`, `hard_link` refuses an existing one (`None`).
    fn put(&self, key: &BlobKey, bytes: &[u8], mode: &Mode) -> PortResult<Option<ObjectCreated>> {
        let path = self.path(key.as_str())?;
        let parent = path
            .parent()
            .ok_or_else(|| PortError::Invalid(format!("blob key {key} has no parent")))?;
        std::fs::create_dir_all(parent).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotADirectory => {
                PortError::Invalid(format!("blob key {key}: a parent is an existing blob"))
            }
            _ => io_error("cannot create", parent, e),
        })?;
        self.check_inside(parent)?;
        if path.is_dir() {
            return Err(PortError::Invalid(format!(
                "blob key {key} is a prefix of other blobs"
            )));
        }

        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join(TMP_DIR)
            .join(format!("{}-{n}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_error("cannot write", &tmp, e));
        }
        let _guard = self
            .publish
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let rename = || {
            std::fs::rename(&tmp, &path).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                io_error("cannot rename into", &path, e)
            })
        };
        let published = match mode {
            Mode::Absent => {
                let linked = std::fs::hard_link(&tmp, &path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
                    other => other.map_err(|e| io_error("cannot link into", &path, e)),
                }
            }
            Mode::Replace => rename(),
            Mode::Match(etag) => {
                let lock_path = self.root.join(TMP_DIR).join(CAS_LOCK);
                let lock = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .and_then(|f| f.lock().map(|()| f))
                    .map_err(|e| {
                        let _ = std::fs::remove_file(&tmp);
                        io_error("cannot lock", &lock_path, e)
                    })?;
                let current = match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.is_file() => std::fs::read(&path).map(Some),
                    Ok(_) => Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                };
                let current = current.map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    io_error("cannot read", &path, e)
                })?;
                if current.as_deref().map(content_etag).as_deref() != Some(etag.as_str()) {
                    let _ = std::fs::remove_file(&tmp);
                    return Ok(None);
                }
                let renamed = rename();
                drop(lock);
                renamed
            }
        };
        published?;
        Ok(Some(ObjectCreated {
            key: key.clone(),
            size: bytes.len() as u64,
            sequencer: self.next_sequencer(),
        }))
    }

    /// The blob if it is at most `limit` bytes: the size is checked from the metadata
    /// first, and at most `limit + 1` bytes are read (the file may grow meanwhile).
    fn get(&self, key: &BlobKey, limit: u64) -> PortResult<Option<Bounded>> {
        let path = self.path(key.as_str())?;
        // Only regular files are blobs; symbolic links are not followed.
        let size = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(None),
            Err(e) => return Err(io_error("cannot read", &path, e)),
        };
        if size > limit {
            return Ok(Some(Bounded::TooLarge { size: Some(size) }));
        }
        if let Some(parent) = path.parent() {
            self.check_inside(parent)?;
        }
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("cannot read", &path, e)),
        };
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| io_error("cannot read", &path, e))?;
        if bytes.len() as u64 > limit {
            return Ok(Some(Bounded::TooLarge { size: None }));
        }
        Ok(Some(Bounded::Bytes(bytes)))
    }

    fn list(&self, prefix: &str) -> PortResult<Vec<BlobMeta>> {
        // Walk from the deepest directory the prefix names; a prefix that no valid key can
        // start with lists nothing (and never walks outside the root).
        let dir_part = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            if BlobKey::new(dir_part).is_err() {
                return Ok(Vec::new());
            }
            self.path(dir_part)?
        };
        if std::fs::symlink_metadata(&start).is_err() {
            return Ok(Vec::new()); // nothing there
        }
        self.check_inside(&start)?;
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(io_error("cannot list", &dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_error("cannot list", &dir, e))?;
                let kind = entry
                    .file_type()
                    .map_err(|e| io_error("cannot stat", &entry.path(), e))?;
                let path = entry.path();
                if kind.is_dir() {
                    stack.push(path);
                    continue;
                }
                if !kind.is_file() {
                    continue; // symbolic links and other oddities are not blobs
                }
                let Ok(rel) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let Some(rel) = rel.to_str() else { continue };
                let rel = rel.replace(std::path::MAIN_SEPARATOR, "/");
                if !rel.starts_with(prefix) {
                    continue;
                }
                let Ok(key) = BlobKey::new(rel) else {
                    continue; // temporaries and foreign files
                };
                let size = entry
                    .metadata()
                    .map_err(|e| io_error("cannot stat", &path, e))?
                    .len();
                out.push(BlobMeta { key, size });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

impl FsBlobStore {
    async fn write(
        &self,
        key: &BlobKey,
        bytes: &[u8],
        mode: Mode,
    ) -> PortResult<Option<ObjectCreated>> {
        let key_owned = key.clone();
        let bytes = bytes.to_vec();
        let Some(event) = self
            .blocking(move |inner| inner.put(&key_owned, &bytes, &mode))
            .await?
        else {
            return Ok(None);
        };
        if let Some((queue, name)) = &self.notify {
            event.notify(queue.as_ref(), name).await?;
        }
        Ok(Some(event))
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, key: &BlobKey, bytes: &[u8]) -> PortResult<ObjectCreated> {
        self.write(key, bytes, Mode::Replace).await?.ok_or_else(|| {
            PortError::Invalid(format!("blob {key}: an unconditional write was refused"))
        })
    }

    async fn put_if_absent(
        &self,
        key: &BlobKey,
        bytes: &[u8],
    ) -> PortResult<Option<ObjectCreated>> {
        self.write(key, bytes, Mode::Absent).await
    }

    async fn put_if_match(
        &self,
        key: &BlobKey,
        bytes: &[u8],
        etag: &str,
    ) -> PortResult<Option<ObjectCreated>> {
        self.write(key, bytes, Mode::Match(etag.to_string())).await
    }

    async fn get(&self, key: &BlobKey) -> PortResult<Option<Vec<u8>>> {
        match self.get_at_most(key, u64::MAX).await? {
            Some(Bounded::Bytes(bytes)) => Ok(Some(bytes)),
            Some(Bounded::TooLarge { .. }) => Err(PortError::Invalid(format!(
                "blob {key}: larger than this machine can hold"
            ))),
            None => Ok(None),
        }
    }

    async fn get_at_most(&self, key: &BlobKey, limit: u64) -> PortResult<Option<Bounded>> {
        let key = key.clone();
        self.blocking(move |inner| inner.get(&key, limit)).await
    }

    async fn get_tagged(&self, key: &BlobKey) -> PortResult<Option<Tagged>> {
        Ok(self.get(key).await?.map(|bytes| Tagged {
            etag: content_etag(&bytes),
            bytes,
        }))
    }

    async fn list(&self, prefix: &str) -> PortResult<Vec<BlobMeta>> {
        let prefix = prefix.to_string();
        self.blocking(move |inner| inner.list(&prefix)).await
    }
}
