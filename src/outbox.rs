//! The durable outbox: what the app sent, kept on disk until the server has
//! provably read it (untracked messages) or the app acknowledged it
//! (tracked ones), so that a killed process loses nothing it accepted.
//!
//! SQLite (bundled, WAL journal) is the store; one client owns a file at a
//! time (an exclusive lock, held while the client lives). Sends from any
//! thread share commits: whoever holds the database commits everything
//! staged so far, so concurrent senders pay one sync between them.
//!
//! This module stores and counts; the session decides when rows go.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;

use crate::error::Error;
use crate::options::{Fsync, OutboxOptions};
use crate::queue::{Entry, Message, OutgoingQueue, Stored};

/// How long a commit may wait for stable storage with `"fsync": "batch"`.
pub(crate) const BATCH_SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub id: u64,
    pub tracked: bool,
    pub message: Message,
}

/// The open outbox of one client.
pub(crate) struct Outbox {
    path: PathBuf,
    /// `None` once closed: the file is free for the next owner.
    store: Mutex<Option<store::Store>>,
    /// Sends waiting for the next commit, in call order.
    staged: Mutex<Vec<Arc<Staged>>>,
    /// Ids and sizes of every row on disk: the limits count these.
    live: Mutex<Live>,
    max_messages: usize,
    max_bytes: usize,
    fsync: Fsync,
    /// `"batch"`: commits wait for a sync.
    unsynced: Notify,
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct Live {
    rows: BTreeMap<u64, usize>,
    bytes: usize,
    /// Staged, not yet committed: already counted against the limits.
    reserved_messages: usize,
    reserved_bytes: usize,
}

/// A send waiting for a commit, and its outcome.
struct Staged {
    message: Message,
    tracked: bool,
    len: usize,
    outcome: Mutex<Option<Result<u64, Error>>>,
    done: Condvar,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("path", &self.path).finish()
    }
}

impl Outbox {
    /// Opens (or creates) the outbox at `options.path`, taking it for this
    /// client alone, and returns it with the rows still pending, oldest
    /// first.
    pub fn open(options: &OutboxOptions) -> Result<(Outbox, Vec<Row>), Error> {
        let path = PathBuf::from(&options.path);
        // A file this client cannot own is a bad option, reported at connect.
        let (store, rows) = store::Store::open(&path, options.fsync).map_err(|e| match e {
            Error::Internal(why) => Error::InvalidArgument(why),
            other => other,
        })?;
        let mut live = Live::default();
        for row in &rows {
            let len = crate::queue::message_len(&row.message);
            live.rows.insert(row.id, len);
            live.bytes += len;
        }
        let outbox = Outbox {
            path,
            store: Mutex::new(Some(store)),
            staged: Mutex::new(Vec::new()),
            live: Mutex::new(live),
            max_messages: options.max_messages,
            max_bytes: options.max_bytes,
            fsync: options.fsync,
            unsynced: Notify::new(),
            closed: AtomicBool::new(false),
        };
        Ok((outbox, rows))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores a message and appends it to `queue`, in id order; returns
    /// its id once it is on disk (with `"fsync": "always"`, on stable
    /// storage). A full outbox refuses (`QueueFull`) and takes nothing.
    pub fn push(
        &self,
        message: Message,
        tracked: bool,
        queue: &OutgoingQueue,
    ) -> Result<u64, Error> {
        let len = crate::queue::message_len(&message);
        self.reserve(len)?;
        let staged = Arc::new(Staged {
            message,
            tracked,
            len,
            outcome: Mutex::new(None),
            done: Condvar::new(),
        });
        self.staged.lock().push(staged.clone());
        // Whoever gets the store commits all that is staged, ours included
        // unless an earlier holder already did.
        {
            let mut store = self.store.lock();
            let batch = std::mem::take(&mut *self.staged.lock());
            if !batch.is_empty() {
                self.commit(store.as_mut(), batch, queue);
            }
        }
        let mut outcome = staged.outcome.lock();
        while outcome.is_none() {
            staged.done.wait(&mut outcome);
        }
        outcome
            .take()
            .unwrap_or_else(|| Err(Error::Internal("outbox: a send lost its outcome".into())))
    }

    fn reserve(&self, len: usize) -> Result<(), Error> {
        let mut live = self.live.lock();
        let messages = live.rows.len() + live.reserved_messages;
        let bytes = live.bytes + live.reserved_bytes;
        if messages >= self.max_messages || bytes + len > self.max_bytes {
            return Err(Error::QueueFull(format!(
                "outbox is full ({messages} messages, {bytes} bytes stored; limits {} and {})",
                self.max_messages, self.max_bytes
            )));
        }
        live.reserved_messages += 1;
        live.reserved_bytes += len;
        Ok(())
    }

    /// Commits `batch` (under the store's lock, so queue order is id order).
    fn commit(
        &self,
        store: Option<&mut store::Store>,
        batch: Vec<Arc<Staged>>,
        queue: &OutgoingQueue,
    ) {
        let rows: Vec<(&Message, bool)> = batch.iter().map(|s| (&s.message, s.tracked)).collect();
        let result = match store {
            Some(store) => store.insert(&rows),
            None => Err(closed_error()),
        };
        if result.is_ok() && self.fsync == Fsync::Batch {
            self.unsynced.notify_one();
        }
        let mut live = self.live.lock();
        for (i, staged) in batch.iter().enumerate() {
            live.reserved_messages -= 1;
            live.reserved_bytes -= staged.len;
            let outcome = match &result {
                Ok(ids) => {
                    live.rows.insert(ids[i], staged.len);
                    live.bytes += staged.len;
                    queue.push_stored(Entry {
                        message: staged.message.clone(),
                        stored: Some(Stored {
                            id: ids[i],
                            tracked: staged.tracked,
                            resent: false,
                        }),
                    });
                    Ok(ids[i])
                }
                Err(e) => Err(e.clone()),
            };
            *staged.outcome.lock() = Some(outcome);
            staged.done.notify_all();
        }
    }

    /// Whether a row is still stored (not delivered, not acked).
    pub fn contains(&self, id: u64) -> bool {
        self.live.lock().rows.contains_key(&id)
    }

    /// Rows stored now.
    pub fn pending(&self) -> u64 {
        self.live.lock().rows.len() as u64
    }

    /// Removes delivered or acknowledged rows; ids no longer stored are
    /// ignored. False if none of them was stored.
    pub fn remove(&self, ids: &[u64]) -> Result<bool, Error> {
        let present: Vec<u64> = {
            let live = self.live.lock();
            ids.iter()
                .copied()
                .filter(|id| live.rows.contains_key(id))
                .collect()
        };
        if present.is_empty() {
            return Ok(false);
        }
        self.store
            .lock()
            .as_mut()
            .ok_or_else(closed_error)?
            .delete(&present)?;
        let mut live = self.live.lock();
        for id in &present {
            if let Some(len) = live.rows.remove(id) {
                live.bytes -= len;
            }
        }
        Ok(true)
    }

    /// With `"fsync": "batch"`: puts what was committed since the last
    /// sync on stable storage.
    pub fn sync(&self) -> Result<(), Error> {
        self.store.lock().as_mut().ok_or_else(closed_error)?.sync()
    }

    /// With `"fsync": "batch"`, until [`Outbox::close`]: syncs within
    /// [`BATCH_SYNC_INTERVAL`] of a commit, and sleeps while none came.
    pub async fn run_batch_sync(self: Arc<Self>) {
        if self.fsync != Fsync::Batch {
            return;
        }
        loop {
            self.unsynced.notified().await;
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            tokio::time::sleep(BATCH_SYNC_INTERVAL).await;
            let outbox = self.clone();
            let synced = tokio::task::spawn_blocking(move || outbox.sync()).await;
            match synced {
                Ok(Err(e)) if !self.closed.load(Ordering::Acquire) => {
                    crate::logging::log!(Warn, "{e}")
                }
                _ => {}
            }
        }
    }

    /// The client ends: a last sync, then the file is closed, so that by
    /// the client's `Terminated` event another client may open it.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(mut store) = self.store.lock().take() {
            if self.fsync == Fsync::Batch {
                if let Err(e) = store.sync() {
                    crate::logging::log!(Warn, "{e}");
                }
            }
        }
        self.unsynced.notify_one();
    }
}

fn closed_error() -> Error {
    Error::Closed("the outbox is closed: its client has ended".into())
}

#[cfg(feature = "outbox")]
mod store {
    //! The SQLite side of the outbox.

    use std::borrow::Cow;
    use std::path::Path;

    use rusqlite::{params, Connection, ErrorCode, OpenFlags, TransactionBehavior};

    use super::Row;
    use crate::error::Error;
    use crate::options::Fsync;
    use crate::queue::Message;

    /// "TthR": marks a database as a Tether outbox.
    const APPLICATION_ID: i32 = 0x5474_6852;
    const SCHEMA_VERSION: i32 = 1;
    const KIND_TEXT: i64 = 1;
    const KIND_BINARY: i64 = 2;

    pub(super) struct Store {
        conn: Connection,
        fsync: Fsync,
    }

    fn failed(path: &Path, what: &str, e: rusqlite::Error) -> Error {
        let reason = match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                "it is in use by another client or process".to_string()
            }
            Some(ErrorCode::NotADatabase) => "the file is not an outbox (not a database)".into(),
            Some(ErrorCode::ReadOnly) => "the file or its folder is read-only".into(),
            Some(ErrorCode::DiskFull) => "the disk is full".into(),
            Some(ErrorCode::CannotOpen) => {
                "the file cannot be opened (does its folder exist?)".into()
            }
            Some(ErrorCode::PermissionDenied) => "permission denied".into(),
            _ => e.to_string(),
        };
        Error::Internal(format!(
            "outbox {}: cannot {what}: {reason}",
            path.display()
        ))
    }

    impl Store {
        pub fn open(path: &Path, fsync: Fsync) -> Result<(Store, Vec<Row>), Error> {
            let invalid = |why: String| {
                Error::InvalidArgument(format!("outbox {}: {why}; left untouched", path.display()))
            };
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| failed(path, "open it", e))?;
            let fail = |what: &'static str| move |e| failed(path, what, e);
            // Another owner holds its lock for as long as it lives: fail
            // at once rather than wait for it.
            conn.busy_timeout(std::time::Duration::ZERO)
                .map_err(fail("configure it"))?;
            let application_id: i32 = conn
                .query_row("PRAGMA application_id", [], |r| r.get(0))
                .map_err(fail("read it"))?;
            let version: i32 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(fail("read it"))?;
            let tables: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(fail("read it"))?;
            let fresh = tables == 0 && application_id == 0;
            if !fresh && application_id != APPLICATION_ID {
                return Err(invalid("the file is another application's database".into()));
            }
            if version > SCHEMA_VERSION {
                return Err(invalid(format!(
                    "the outbox has schema {version}, newer than this build's {SCHEMA_VERSION}"
                )));
            }
            conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
                .map_err(fail("lock it"))?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(fail("set its journal"))?;
            let synchronous = match fsync {
                Fsync::Always => "FULL",
                Fsync::Batch => "NORMAL",
            };
            conn.pragma_update(None, "synchronous", synchronous)
                .map_err(fail("configure it"))?;
            let mut store = Store { conn, fsync };
            // The first write takes the exclusive lock, kept until close.
            let tx = store
                .conn
                .transaction_with_behavior(TransactionBehavior::Exclusive)
                .map_err(fail("lock it"))?;
            if fresh {
                tx.execute_batch(&format!(
                    "CREATE TABLE outbox (
                         id INTEGER PRIMARY KEY AUTOINCREMENT,
                         kind INTEGER NOT NULL,
                         tracked INTEGER NOT NULL,
                         data BLOB NOT NULL);
                     PRAGMA application_id = {APPLICATION_ID};
                     PRAGMA user_version = {SCHEMA_VERSION};"
                ))
                .map_err(fail("create it"))?;
            }
            tx.commit().map_err(fail("lock it"))?;
            let rows = store.load().map_err(|e| match e {
                Error::Internal(msg) => invalid(format!("not a valid outbox ({msg})")),
                other => other,
            })?;
            Ok((store, rows))
        }

        fn load(&mut self) -> Result<Vec<Row>, Error> {
            let internal = |e: rusqlite::Error| Error::Internal(e.to_string());
            let mut statement = self
                .conn
                .prepare("SELECT id, kind, tracked, data FROM outbox ORDER BY id")
                .map_err(internal)?;
            let rows = statement
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, bool>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                    ))
                })
                .map_err(internal)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, kind, tracked, data) = row.map_err(internal)?;
                let message = match kind {
                    KIND_TEXT => Message::Text(
                        String::from_utf8(data)
                            .map_err(|_| Error::Internal(format!("row {id}: text not UTF-8")))?
                            .into(),
                    ),
                    KIND_BINARY => Message::Binary(data.into()),
                    other => {
                        return Err(Error::Internal(format!("row {id}: unknown kind {other}")))
                    }
                };
                let id = u64::try_from(id)
                    .map_err(|_| Error::Internal(format!("row id {id} is negative")))?;
                out.push(Row {
                    id,
                    tracked,
                    message,
                });
            }
            Ok(out)
        }

        /// Inserts rows in order in one transaction; their ids.
        pub fn insert(&mut self, rows: &[(&Message, bool)]) -> Result<Vec<u64>, Error> {
            let path = self.conn.path().unwrap_or("").to_string();
            let fail = |e| failed(Path::new(&path), "store the message", e);
            let tx = self.conn.transaction().map_err(fail)?;
            let mut ids = Vec::with_capacity(rows.len());
            {
                let mut insert = tx
                    .prepare_cached("INSERT INTO outbox (kind, tracked, data) VALUES (?1, ?2, ?3)")
                    .map_err(fail)?;
                for (message, tracked) in rows {
                    let (kind, data): (i64, Cow<'_, [u8]>) = match message {
                        Message::Text(text) => (KIND_TEXT, Cow::Borrowed(text.as_bytes())),
                        Message::Binary(bytes) => (KIND_BINARY, Cow::Borrowed(bytes)),
                        // Not masked with the outbox on, but stored whole if it were.
                        Message::Masked(frame) => {
                            let kind = if frame.is_text() {
                                KIND_TEXT
                            } else {
                                KIND_BINARY
                            };
                            (kind, Cow::Owned(frame.payload()))
                        }
                    };
                    insert
                        .execute(params![kind, tracked, &data[..]])
                        .map_err(fail)?;
                    ids.push(tx.last_insert_rowid() as u64);
                }
            }
            tx.commit().map_err(fail)?;
            Ok(ids)
        }

        pub fn delete(&mut self, ids: &[u64]) -> Result<(), Error> {
            let path = self.conn.path().unwrap_or("").to_string();
            let fail = |e| failed(Path::new(&path), "remove delivered messages", e);
            if self.fsync == Fsync::Batch {
                return self.delete_rows(ids).map_err(fail);
            }
            // A delete lost to a power cut only sends a message twice: it
            // need not wait for the disk (the next stored message's sync
            // carries it along).
            self.conn
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(fail)?;
            let deleted = self.delete_rows(ids).map_err(fail);
            self.conn
                .pragma_update(None, "synchronous", "FULL")
                .map_err(fail)?;
            deleted
        }

        fn delete_rows(&mut self, ids: &[u64]) -> Result<(), rusqlite::Error> {
            let tx = self.conn.transaction()?;
            {
                let mut delete = tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
                for id in ids {
                    delete.execute(params![*id as i64])?;
                }
            }
            tx.commit()
        }

        pub fn sync(&mut self) -> Result<(), Error> {
            let path = self.conn.path().unwrap_or("").to_string();
            // A checkpoint syncs the WAL before it copies it back.
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                .map_err(|e| failed(Path::new(&path), "sync", e))
        }
    }
}

#[cfg(not(feature = "outbox"))]
mod store {
    //! Built without the `outbox` feature: no SQLite, no outbox.

    use std::path::Path;

    use super::Row;
    use crate::error::Error;
    use crate::options::Fsync;
    use crate::queue::Message;

    pub(super) enum Store {}

    impl Store {
        pub fn open(_: &Path, _: Fsync) -> Result<(Store, Vec<Row>), Error> {
            Err(Error::InvalidArgument(
                "options: outbox: this build of Tether has no outbox (cargo feature `outbox`)"
                    .into(),
            ))
        }

        pub fn insert(&mut self, _: &[(&Message, bool)]) -> Result<Vec<u64>, Error> {
            match *self {}
        }

        pub fn delete(&mut self, _: &[u64]) -> Result<(), Error> {
            match *self {}
        }

        pub fn sync(&mut self) -> Result<(), Error> {
            match *self {}
        }
    }
}

#[cfg(all(test, feature = "outbox"))]
mod tests {
    use super::*;

    use crate::options::QueueOptions;

    fn queue() -> OutgoingQueue {
        OutgoingQueue::new(&QueueOptions::default())
    }

    fn options(path: &Path) -> OutboxOptions {
        OutboxOptions {
            path: path.to_string_lossy().into_owned(),
            ..OutboxOptions::default()
        }
    }

    /// A fresh folder, removed with everything in it when dropped.
    fn temp_dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("tether-outbox-{name}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn rows_keep_their_order_and_ids_grow_across_reopens() {
        let dir = temp_dir("order");
        let path = dir.path().join("o.db");
        let q = queue();
        let (outbox, rows) = Outbox::open(&options(&path)).unwrap();
        assert!(rows.is_empty());
        let a = outbox.push(Message::text("a"), false, &q).unwrap();
        let b = outbox.push(Message::binary(vec![1, 2]), true, &q).unwrap();
        assert!(b > a);
        assert_eq!(outbox.pending(), 2);
        assert!(outbox.remove(&[a]).unwrap());
        assert!(!outbox.remove(&[a]).unwrap(), "already gone");
        drop(outbox);
        let (outbox, rows) = Outbox::open(&options(&path)).unwrap();
        assert_eq!(
            rows,
            vec![Row {
                id: b,
                tracked: true,
                message: Message::binary(vec![1, 2])
            }]
        );
        outbox.remove(&[b]).unwrap();
        let c = outbox.push(Message::text("c"), false, &q).unwrap();
        assert!(c > b, "ids never go back, even after deletes");
    }

    #[test]
    fn a_closed_outbox_frees_its_file_at_once() {
        let dir = temp_dir("close");
        let path = dir.path().join("o.db");
        let q = queue();
        let (first, _) = Outbox::open(&options(&path)).unwrap();
        first.push(Message::text("kept"), false, &q).unwrap();
        first.close();
        // Still referenced, but closed: the next owner gets the file.
        let (second, rows) = Outbox::open(&options(&path)).unwrap();
        assert_eq!(rows.len(), 1);
        assert!(matches!(
            first.push(Message::text("late"), false, &q),
            Err(Error::Closed(_))
        ));
        assert!(matches!(
            first.remove(&[rows[0].id]),
            Ok(true) | Err(Error::Closed(_))
        ));
        drop(second);
    }

    #[test]
    fn a_full_outbox_refuses_and_takes_nothing() {
        let dir = temp_dir("full");
        let mut o = options(&dir.path().join("o.db"));
        o.max_messages = 2;
        o.max_bytes = 10;
        let q = queue();
        let (outbox, _) = Outbox::open(&o).unwrap();
        outbox.push(Message::text("12345"), false, &q).unwrap();
        assert!(matches!(
            outbox.push(Message::text("123456"), false, &q),
            Err(Error::QueueFull(_))
        ));
        let id = outbox.push(Message::text("12345"), false, &q).unwrap();
        assert!(matches!(
            outbox.push(Message::text(""), false, &q),
            Err(Error::QueueFull(_))
        ));
        assert_eq!(outbox.pending(), 2);
        outbox.remove(&[id]).unwrap();
        outbox.push(Message::text("1"), false, &q).unwrap();
    }

    #[test]
    fn a_second_owner_is_refused_with_a_reason() {
        let dir = temp_dir("owner");
        let path = dir.path().join("o.db");
        let (first, _) = Outbox::open(&options(&path)).unwrap();
        first.push(Message::text("mine"), false, &queue()).unwrap();
        let err = Outbox::open(&options(&path)).unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
        drop(first);
        let (_, rows) = Outbox::open(&options(&path)).unwrap();
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn files_that_are_not_an_outbox_are_refused_and_left_untouched() {
        let dir = temp_dir("foreign");
        let garbage = dir.path().join("garbage.db");
        std::fs::write(
            &garbage,
            b"this is not a database at all, not even close....",
        )
        .unwrap();
        let before = std::fs::read(&garbage).unwrap();
        let err = Outbox::open(&options(&garbage)).unwrap_err();
        assert!(err.to_string().contains("not"), "{err}");
        assert_eq!(std::fs::read(&garbage).unwrap(), before);

        let foreign = dir.path().join("foreign.db");
        {
            let conn = rusqlite::Connection::open(&foreign).unwrap();
            conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('x');")
                .unwrap();
        }
        let before = std::fs::read(&foreign).unwrap();
        let err = Outbox::open(&options(&foreign)).unwrap_err();
        assert!(err.to_string().contains("another application"), "{err}");
        assert_eq!(std::fs::read(&foreign).unwrap(), before);

        let newer = dir.path().join("newer.db");
        drop(Outbox::open(&options(&newer)).unwrap());
        {
            let conn = rusqlite::Connection::open(&newer).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        let err = Outbox::open(&options(&newer)).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[test]
    fn a_path_that_cannot_be_written_is_a_clear_error() {
        let dir = temp_dir("badpath");
        let err = Outbox::open(&options(&dir.path().join("no/such/folder/o.db"))).unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
        // A folder is no file.
        let err = Outbox::open(&options(dir.path())).unwrap_err();
        assert!(err.to_string().starts_with("outbox"), "{err}");
    }

    #[test]
    fn concurrent_senders_all_get_their_own_ids_in_a_shared_commit() {
        let dir = temp_dir("concurrent");
        let mut o = options(&dir.path().join("o.db"));
        o.fsync = Fsync::Always;
        let (outbox, _) = Outbox::open(&o).unwrap();
        let outbox = Arc::new(outbox);
        let q = Arc::new(queue());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (outbox, q) = (outbox.clone(), q.clone());
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| {
                            outbox
                                .push(Message::text(&format!("{t}:{i}")), false, &q)
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut ids: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 200);
        assert_eq!(outbox.pending(), 200);
        // The queue got them in id order.
        let queued: Vec<u64> = q.take_all().iter().map(|e| e.stored.unwrap().id).collect();
        assert_eq!(queued, ids);
        outbox.sync().unwrap();
    }
}
