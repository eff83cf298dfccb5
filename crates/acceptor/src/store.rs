//! The acceptor's durable state in RocksDB.
//!
//! Keys: `meta/identity`, `meta/membership` (absent while blank: then it
//! never votes), `meta/configuration` (the configuration it moved to last;
//! absent in epoch 0), `meta/promised`, `meta/base` (the compaction
//! snapshot), `meta/probe` (written by readiness checks), `log/<slot as 8
//! big-endian bytes>` (so RocksDB's byte order is slot order) and
//! `learner/<id>` (each learner's reported progress). Every value is sealed
//! by [`crate::codec`] with a checksum and a format version; data dirs
//! written before epochs existed (version 1 records) load as epoch 0.
//!
//! The data directory holds the database in `acceptor/`. A new database is
//! built in `acceptor.init/`, given its identity, and renamed into place,
//! so a database without an identity can only be a foreign or damaged one.
//!
//! `meta/place` records where the database was created: the inode and birth
//! time of `acceptor/`. A file-level copy (`cp -a`, `rsync`, `tar`, a
//! restored backup) gets a new directory, so on open a database that is not
//! in its place is an old copy of some member's state: voting with it could
//! forget promises and votes given since. It is set aside
//! (`acceptor.copied-<unix ms>/`) and the acceptor starts blank under a new
//! identity, to be rebuilt like a lost disk. (A block-level snapshot of the
//! volume keeps inode and birth time and is not detected; see
//! docs/operations.md.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use paxos_core::{AcceptorState, AcceptorStore, Ballot, Change, MemberId, Persisted, Slot, Snapshot};
use rocksdb::{Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use crate::codec::{self, CorruptRecord, Decoder, Encoder};

/// Name of the RocksDB directory inside `--data-dir`.
pub const DB_DIR_NAME: &str = "acceptor";
const INIT_DIR_NAME: &str = "acceptor.init";

const KEY_IDENTITY: &[u8] = b"meta/identity";
const KEY_PROMISED: &[u8] = b"meta/promised";
const KEY_MEMBERSHIP: &[u8] = b"meta/membership";
const KEY_CONFIGURATION: &[u8] = b"meta/configuration";
const KEY_BASE: &[u8] = b"meta/base";
const KEY_PROBE: &[u8] = b"meta/probe";
const KEY_PLACE: &[u8] = b"meta/place";
/// Prefix of a copied database set aside by [`open_data_dir`].
pub const COPIED_DIR_PREFIX: &str = "acceptor.copied-";
const LOG_PREFIX: &[u8] = b"log/";
/// The first key after every `log/` key (`'/' + 1`): the end of a range
/// delete that reaches the last slot.
const LOG_END: &[u8] = b"log0";
const LEARNER_PREFIX: &[u8] = b"learner/";
/// RocksDB's own info logs: a few small files, so the disk stays bounded.
const INFO_LOG_FILES_MAX: usize = 4;
const INFO_LOG_FILE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Which cluster a data directory belongs to, and which node it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cluster_id: String,
    pub node_uuid: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("RocksDB: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error(transparent)]
    Corrupt(#[from] CorruptRecord),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Refused(String),
}

/// [`AcceptorStore`] on RocksDB: one synced `WriteBatch` per write.
pub struct RocksStore {
    db: DB,
}

impl RocksStore {
    /// Opens (creating if missing) the database at `path`, with no identity
    /// check: for tests and for [`open_data_dir`].
    pub fn open(path: &Path) -> Result<RocksStore, StoreError> {
        Self::open_with(path, true)
    }

    pub fn identity(&self) -> Result<Option<Identity>, StoreError> {
        self.read_record(KEY_IDENTITY, |d| {
            Ok(Identity {
                cluster_id: d.str()?,
                node_uuid: d.str()?,
            })
        })
    }

    /// Where this database was created, if it says (data dirs made before
    /// the record existed do not).
    fn place(&self) -> Result<Option<Place>, StoreError> {
        self.read_record(KEY_PLACE, |d| {
            Ok(Place {
                inode: d.u64()?,
                birth_ns: d.u64()?,
            })
        })
    }

    /// One sealed record, decoded whole (trailing bytes are corruption);
    /// None when the key is absent.
    fn read_record<T>(
        &self,
        key: &[u8],
        decode: impl FnOnce(&mut Decoder) -> Result<T, CorruptRecord>,
    ) -> Result<Option<T>, StoreError> {
        let Some(record) = self.db.get(key)? else {
            return Ok(None);
        };
        let mut d = Decoder::open(key, &record)?;
        let value = decode(&mut d)?;
        d.finish()?;
        Ok(Some(value))
    }

    fn write_place(&mut self, place: Place) -> Result<(), StoreError> {
        let record = Encoder::default()
            .u64(place.inode)
            .u64(place.birth_ns)
            .seal(KEY_PLACE);
        self.write_synced(KEY_PLACE, record)
    }

    /// Every learner's last reported `learned_below`.
    pub fn learners(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut learners = BTreeMap::new();
        for item in self
            .db
            .iterator(IteratorMode::From(LEARNER_PREFIX, Direction::Forward))
        {
            let (key, record) = item?;
            let Some(id) = key.strip_prefix(LEARNER_PREFIX) else {
                break;
            };
            let id = String::from_utf8(id.to_vec()).map_err(|_| CorruptRecord {
                key: codec::printable_key(&key),
                reason: "learner id".into(),
            })?;
            let mut d = Decoder::open(&key, &record)?;
            let learned_below = d.u64()?;
            d.finish()?;
            learners.insert(id, learned_below);
        }
        Ok(learners)
    }

    /// Applies `changes` in order, records learner progress, and optionally
    /// touches the readiness probe key, all in one synced batch. A batch with
    /// nothing in it costs no I/O: everything handed over before is durable.
    pub fn write_all(
        &mut self,
        changes: &[Change],
        learners: &[(String, u64)],
        probe: bool,
    ) -> Result<Persisted, StoreError> {
        let mut batch = WriteBatch::default();
        for change in changes {
            add_change(&mut batch, change);
        }
        for (id, learned_below) in learners {
            let key = learner_key(id);
            batch.put(&key, Encoder::default().u64(*learned_below).seal(&key));
        }
        if probe {
            batch.put(KEY_PROBE, Encoder::default().seal(KEY_PROBE));
        }
        if !batch.is_empty() {
            let mut options = WriteOptions::default();
            // Planted bugs: a write that is not synced before the replies.
            let unsynced = service::planted::is("acceptor_unsynced_write")
                || service::planted::is("acceptor_reply_before_fsync");
            options.set_sync(!unsynced);
            self.db.write_opt(batch, &options)?;
        }
        Ok(Persisted::after_durable_write())
    }

    /// Syncs the write-ahead log: only the planted bug
    /// `acceptor_reply_before_fsync` needs it (after its replies).
    pub fn sync_wal(&self) -> Result<(), StoreError> {
        Ok(self.db.flush_wal(true)?)
    }

    /// Moves the memtable to disk so the next start replays a short WAL;
    /// every write is already durable without it.
    pub fn flush(&self) -> Result<(), StoreError> {
        Ok(self.db.flush()?)
    }

    fn open_with(path: &Path, create: bool) -> Result<RocksStore, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(create);
        options.set_keep_log_file_num(INFO_LOG_FILES_MAX);
        options.set_max_log_file_size(INFO_LOG_FILE_BYTES_MAX);
        Ok(RocksStore {
            db: DB::open(&options, path)?,
        })
    }

    fn write_identity(&mut self, identity: &Identity) -> Result<(), StoreError> {
        let record = Encoder::default()
            .str(&identity.cluster_id)
            .str(&identity.node_uuid)
            .seal(KEY_IDENTITY);
        self.write_synced(KEY_IDENTITY, record)
    }

    fn write_synced(&mut self, key: &[u8], record: Vec<u8>) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put(key, record);
        let mut options = WriteOptions::default();
        options.set_sync(true);
        Ok(self.db.write_opt(batch, &options)?)
    }

    fn load_state(&self) -> Result<AcceptorState, StoreError> {
        // A database without an identity (tests, or refused by open_data_dir) is member 0.
        let member = match self.identity()? {
            None => MemberId(0),
            Some(identity) => {
                api::internal::member_id(&identity.node_uuid).map_err(|reason| CorruptRecord {
                    key: codec::printable_key(KEY_IDENTITY),
                    reason,
                })?
            }
        };
        let membership = match self.db.get(KEY_MEMBERSHIP)? {
            None => None,
            Some(record) => {
                let mut d = Decoder::open(KEY_MEMBERSHIP, &record)?;
                let membership = d.membership()?;
                d.finish()?;
                Some(membership)
            }
        };
        let configuration = match self.db.get(KEY_CONFIGURATION)? {
            None => None,
            Some(record) => {
                let mut d = Decoder::open(KEY_CONFIGURATION, &record)?;
                let configuration = d.configuration()?;
                d.finish()?;
                Some(configuration)
            }
        };
        let promised = match self.db.get(KEY_PROMISED)? {
            None => Ballot::ZERO,
            Some(record) => {
                let mut d = Decoder::open(KEY_PROMISED, &record)?;
                let ballot = d.ballot()?;
                d.finish()?;
                ballot
            }
        };
        let base = match self.db.get(KEY_BASE)? {
            None => Snapshot::default(),
            Some(record) => {
                let mut d = Decoder::open(KEY_BASE, &record)?;
                let snapshot = d.snapshot()?;
                d.finish()?;
                snapshot
            }
        };
        let mut log = BTreeMap::new();
        for item in self
            .db
            .iterator(IteratorMode::From(LOG_PREFIX, Direction::Forward))
        {
            let (key, record) = item?;
            if !key.starts_with(LOG_PREFIX) {
                break;
            }
            let slot = parse_log_key(&key)?;
            let mut d = Decoder::open(&key, &record)?;
            let accepted = d.accepted()?;
            d.finish()?;
            log.insert(slot, accepted);
        }
        Ok(AcceptorState {
            member,
            membership,
            configuration,
            promised,
            base,
            log,
        })
    }
}

impl AcceptorStore for RocksStore {
    type Error = StoreError;

    fn load(&self) -> Result<AcceptorState, StoreError> {
        self.load_state()
    }

    fn write(&mut self, changes: &[Change]) -> Result<Persisted, StoreError> {
        self.write_all(changes, &[], false)
    }
}

/// Where a database directory lives on its file system: a copy of it
/// anywhere (even onto the same path) has another inode or birth time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Place {
    inode: u64,
    /// 0 where the file system records no birth time.
    birth_ns: u64,
}

impl Place {
    fn of(dir: &Path) -> Result<Place, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(dir).map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let birth_ns = metadata
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(Place {
            inode: metadata.ino(),
            birth_ns,
        })
    }
}

/// Opens the acceptor database in `data_dir`, creating it with a fresh
/// identity on first start. Refuses a database of another cluster, and one
/// without an identity record (wiped or foreign). A database that is not
/// where it was created (a restored copy) is set aside, and a blank one with
/// a new identity takes its place.
pub fn open_data_dir(
    data_dir: &Path,
    cluster_id: &str,
    new_node_uuid: impl FnOnce() -> String,
) -> Result<(RocksStore, Identity), StoreError> {
    let db_dir = data_dir.join(DB_DIR_NAME);
    if !db_dir.exists() {
        create_database(
            data_dir,
            Identity {
                cluster_id: cluster_id.to_owned(),
                node_uuid: new_node_uuid(),
            },
        )?;
        return open_database(&db_dir, cluster_id);
    }
    let (mut store, identity) = open_database(&db_dir, cluster_id)?;
    let here = Place::of(&db_dir)?;
    match store.place()? {
        Some(recorded) if recorded == here => Ok((store, identity)),
        // Made before places were recorded: trust it once and record it.
        None => {
            store.write_place(here)?;
            Ok((store, identity))
        }
        Some(recorded) => {
            drop(store);
            let aside = set_aside(data_dir, &db_dir)?;
            tracing::error!(
                node_uuid = %identity.node_uuid,
                ?recorded,
                ?here,
                set_aside = %aside.display(),
                "this acceptor database is a copy (restored backup or copied data dir), not the one it was created as: \
                 it may lack promises and votes given since, so it never votes; it was set aside and the acceptor \
                 starts blank under a new identity, to be rebuilt by the leader"
            );
            create_database(
                data_dir,
                Identity {
                    cluster_id: cluster_id.to_owned(),
                    node_uuid: new_node_uuid(),
                },
            )?;
            open_database(&db_dir, cluster_id)
        }
    }
}

/// Opens an existing database and checks its identity.
fn open_database(db_dir: &Path, cluster_id: &str) -> Result<(RocksStore, Identity), StoreError> {
    if !db_dir.join("CURRENT").exists() {
        return Err(StoreError::Refused(format!(
            "{} exists but holds no RocksDB database; refusing to start on a damaged or foreign data dir",
            db_dir.display()
        )));
    }
    let store = RocksStore::open_with(db_dir, false)?;
    let Some(identity) = store.identity()? else {
        return Err(StoreError::Refused(format!(
            "{} holds a database without an identity record (wiped or foreign); refusing to vote with it",
            db_dir.display()
        )));
    };
    if identity.cluster_id != cluster_id {
        return Err(StoreError::Refused(format!(
            "{} belongs to cluster {:?} (node {}), but this acceptor was started with --cluster-id {:?}",
            db_dir.display(),
            identity.cluster_id,
            identity.node_uuid,
            cluster_id
        )));
    }
    Ok((store, identity))
}

/// Renames `db_dir` to `acceptor.copied-<unix ms>` beside it (durably), and
/// returns the new path. Nothing is deleted: the operator decides.
fn set_aside(data_dir: &Path, db_dir: &Path) -> Result<PathBuf, StoreError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let aside = data_dir.join(format!("{COPIED_DIR_PREFIX}{now_ms}"));
    std::fs::rename(db_dir, &aside).map_err(|source| StoreError::Io {
        path: aside.clone(),
        source,
    })?;
    sync_dir(data_dir)?;
    Ok(aside)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })
}

/// Builds a database with its identity and place aside, then renames it
/// into place (a rename keeps the inode), so a crash half way leaves only a
/// scratch directory, removed on the next try.
fn create_database(data_dir: &Path, identity: Identity) -> Result<(), StoreError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Io { path, source }
    };
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let init_dir = data_dir.join(INIT_DIR_NAME);
    if init_dir.exists() {
        std::fs::remove_dir_all(&init_dir).map_err(io(&init_dir))?;
    }
    {
        let mut store = RocksStore::open_with(&init_dir, true)?;
        store.write_identity(&identity)?;
        store.write_place(Place::of(&init_dir)?)?;
    }
    let db_dir = data_dir.join(DB_DIR_NAME);
    std::fs::rename(&init_dir, &db_dir).map_err(io(&db_dir))?;
    // The rename is durable only once the directory holding it is synced.
    sync_dir(data_dir)?;
    tracing::info!(cluster_id = %identity.cluster_id, node_uuid = %identity.node_uuid, dir = %db_dir.display(), "created a new acceptor database");
    Ok(())
}

/// Adds one change to `batch` in the order of `Change::apply_to`: a batch
/// applies in order, so a range delete removes only what came before it.
fn add_change(batch: &mut WriteBatch, change: &Change) {
    if let Some(membership) = &change.membership {
        batch.put(
            KEY_MEMBERSHIP,
            Encoder::default().membership(membership).seal(KEY_MEMBERSHIP),
        );
    }
    if let Some(configuration) = &change.configuration {
        batch.put(
            KEY_CONFIGURATION,
            Encoder::default()
                .configuration(configuration)
                .seal(KEY_CONFIGURATION),
        );
    }
    if let Some(ballot) = change.promised {
        batch.put(KEY_PROMISED, Encoder::default().ballot(ballot).seal(KEY_PROMISED));
    }
    if let Some(snapshot) = &change.compact {
        if snapshot.below > Slot::ZERO {
            batch.delete_range(log_key(Slot::ZERO), log_key(snapshot.below));
        }
        batch.put(KEY_BASE, Encoder::default().snapshot(snapshot).seal(KEY_BASE));
    }
    if let Some(from) = change.truncate {
        batch.delete_range(log_key(from).as_slice(), LOG_END);
    }
    for (slot, accepted) in &change.put {
        let key = log_key(*slot);
        batch.put(&key, Encoder::default().accepted(accepted).seal(&key));
    }
}

fn log_key(slot: Slot) -> Vec<u8> {
    let mut key = LOG_PREFIX.to_vec();
    key.extend_from_slice(&slot.0.to_be_bytes());
    key
}

fn parse_log_key(key: &[u8]) -> Result<Slot, CorruptRecord> {
    let corrupt = || CorruptRecord {
        key: codec::printable_key(key),
        reason: "malformed log key".into(),
    };
    let suffix = key.strip_prefix(LOG_PREFIX).ok_or_else(corrupt)?;
    let bytes: [u8; 8] = suffix.try_into().map_err(|_| corrupt())?;
    Ok(Slot(u64::from_be_bytes(bytes)))
}

fn learner_key(id: &str) -> Vec<u8> {
    let mut key = LEARNER_PREFIX.to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos_core::{Accepted, Configuration, Membership, NodeId, Seat, Value};

    fn uuid() -> String {
        "00000000-0000-4000-8000-000000000001".to_owned()
    }

    #[test]
    fn rocks_store_conforms() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db");
        paxos_core::storage::conformance::run(|| RocksStore::open(&path).expect("open"));
    }

    #[test]
    fn first_start_records_identity_and_later_starts_check_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, identity) = open_data_dir(dir.path(), "alpha", uuid).expect("first start");
        assert_eq!(
            identity,
            Identity {
                cluster_id: "alpha".into(),
                node_uuid: uuid()
            }
        );
        drop(store);
        let (_, again) = open_data_dir(dir.path(), "alpha", || unreachable!("no new uuid")).expect("restart");
        assert_eq!(again, identity);
    }

    /// A restored copy of a member's database must not vote with what it
    /// holds: it is set aside whole and a blank one takes its place.
    #[test]
    fn a_copied_database_is_set_aside_and_the_acceptor_starts_blank_as_a_new_member() {
        let original = tempfile::tempdir().expect("temp dir");
        let (mut store, founder) = open_data_dir(original.path(), "alpha", uuid).expect("first start");
        let member = Membership {
            members: [MemberId(7)].into(),
            retired: Default::default(),
        };
        store
            .write(&[Change {
                membership: Some(member),
                ..Change::default()
            }])
            .expect("write");
        drop(store);
        let copy = tempfile::tempdir().expect("temp dir");
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(original.path().join(DB_DIR_NAME))
            .arg(copy.path())
            .status()
            .expect("cp");
        assert!(status.success());

        let (store, identity) = open_data_dir(copy.path(), "alpha", || {
            "0f0f0f0f-0000-4000-8000-000000000002".into()
        })
        .expect("start on the copy");
        assert_ne!(
            identity.node_uuid, founder.node_uuid,
            "a copy comes back as a new member"
        );
        assert_eq!(
            store.load().expect("load").membership,
            None,
            "and blank: it never votes"
        );
        let aside: Vec<String> = std::fs::read_dir(copy.path())
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(COPIED_DIR_PREFIX))
            .collect();
        assert_eq!(aside.len(), 1, "the copy is kept aside, not deleted: {aside:?}");
        drop(store);

        // The original, never copied, is still itself.
        let (store, again) =
            open_data_dir(original.path(), "alpha", || unreachable!("no new uuid")).expect("restart");
        assert_eq!(again, founder);
        assert!(store.load().expect("load").membership.is_some());
    }

    /// Renaming the data dir (same file system) is not a copy.
    #[test]
    fn a_moved_data_dir_is_still_the_same_member() {
        let parent = tempfile::tempdir().expect("temp dir");
        let (first, second) = (parent.path().join("one"), parent.path().join("two"));
        let (_, founder) = open_data_dir(&first, "alpha", uuid).expect("first start");
        std::fs::rename(&first, &second).expect("mv");
        let (_, again) = open_data_dir(&second, "alpha", || unreachable!("no new uuid")).expect("restart");
        assert_eq!(again, founder);
    }

    /// A database made before places were recorded is trusted once, then
    /// held to the place it has.
    #[test]
    fn a_database_without_a_place_record_gets_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(open_data_dir(dir.path(), "alpha", uuid).expect("first start"));
        {
            let db = DB::open_default(dir.path().join(DB_DIR_NAME)).expect("open raw");
            db.delete(KEY_PLACE).expect("delete place");
        }
        let (store, identity) =
            open_data_dir(dir.path(), "alpha", || unreachable!("no new uuid")).expect("upgrade");
        assert_eq!(identity.node_uuid, uuid());
        assert!(
            store.place().expect("read").is_some(),
            "recorded on the first open"
        );
    }

    #[test]
    fn another_clusters_data_dir_is_refused_naming_both_ids() {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(open_data_dir(dir.path(), "alpha", uuid).expect("first start"));
        let error = open_data_dir(dir.path(), "beta", uuid)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            error.contains("\"alpha\"") && error.contains("\"beta\""),
            "{error}"
        );
    }

    #[test]
    fn a_database_without_identity_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(RocksStore::open(&dir.path().join(DB_DIR_NAME)).expect("bare database"));
        let error = open_data_dir(dir.path(), "alpha", uuid)
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("without an identity"), "{error}");
    }

    #[test]
    fn an_empty_database_directory_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join(DB_DIR_NAME)).expect("mkdir");
        assert!(open_data_dir(dir.path(), "alpha", uuid).is_err());
    }

    #[test]
    fn a_leftover_scratch_database_is_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(RocksStore::open(&dir.path().join(INIT_DIR_NAME)).expect("scratch"));
        let (_, identity) = open_data_dir(dir.path(), "alpha", uuid).expect("start");
        assert_eq!(identity.cluster_id, "alpha");
    }

    #[test]
    fn a_corrupt_record_fails_the_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db");
        {
            let mut store = RocksStore::open(&path).expect("open");
            let accepted = Accepted {
                ballot: Ballot::new(1, NodeId(1)),
                value: Value::Noop,
                chosen: false,
            };
            let change = Change {
                put: vec![(Slot(3), accepted)],
                ..Change::default()
            };
            store.write(&[change]).expect("write");
            // Damage the record behind the codec's back.
            let key = log_key(Slot(3));
            let mut record = store.db.get(&key).expect("get").expect("present");
            record[2] ^= 0x40;
            store.db.put(&key, record).expect("put");
        }
        let store = RocksStore::open(&path).expect("reopen");
        let error = store.load().expect_err("corruption is an error").to_string();
        assert!(error.contains("checksum"), "{error}");
    }

    #[test]
    fn learner_progress_survives_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db");
        {
            let mut store = RocksStore::open(&path).expect("open");
            store
                .write_all(&[], &[("l-1".into(), 40), ("l.2".into(), 7)], true)
                .expect("write");
            store.write_all(&[], &[("l-1".into(), 41)], false).expect("write");
        }
        let store = RocksStore::open(&path).expect("reopen");
        let learners = store.learners().expect("learners");
        assert_eq!(
            learners,
            BTreeMap::from([("l-1".to_owned(), 41), ("l.2".to_owned(), 7)])
        );
        assert_eq!(
            store.load().expect("load"),
            AcceptorState::default(),
            "learners are not log entries"
        );
    }

    fn vote(round: u64) -> Accepted {
        Accepted {
            ballot: Ballot::new(round, NodeId(1)),
            value: Value::Noop,
            chosen: false,
        }
    }

    #[test]
    fn the_log_range_ends_after_every_slot_and_before_every_other_key() {
        assert!(log_key(Slot(u64::MAX)).as_slice() < LOG_END);
        assert!(LOG_PREFIX < LOG_END && !LOG_END.starts_with(LOG_PREFIX));
        for other in [
            KEY_IDENTITY,
            KEY_PROMISED,
            KEY_MEMBERSHIP,
            KEY_CONFIGURATION,
            KEY_BASE,
            KEY_PROBE,
        ] {
            assert!(other > LOG_END, "{}", codec::printable_key(other));
        }
        assert!(learner_key("zzz").as_slice() < LOG_PREFIX);
    }

    #[test]
    fn truncate_deletes_every_slot_from_its_point_and_nothing_else() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db");
        let mut store = RocksStore::open(&path).expect("open");
        let slots = [
            Slot(0),
            Slot(4),
            Slot(5),
            Slot(6),
            Slot(u64::MAX - 1),
            Slot(u64::MAX),
        ];
        let seed = Change {
            promised: Some(Ballot::new(2, NodeId(1))),
            put: slots.iter().map(|slot| (*slot, vote(2))).collect(),
            ..Change::default()
        };
        store
            .write_all(std::slice::from_ref(&seed), &[("l1".into(), 3)], false)
            .expect("write");
        // Truncated and refilled in one batch: the put after the delete stays.
        let truncate = Change {
            truncate: Some(Slot(5)),
            put: vec![(Slot(6), vote(3))],
            ..Change::default()
        };
        store.write(std::slice::from_ref(&truncate)).expect("write");
        drop(store);
        let store = RocksStore::open(&path).expect("reopen");
        let state = store.load().expect("load");
        assert_eq!(
            state.log.into_iter().collect::<Vec<_>>(),
            vec![(Slot(0), vote(2)), (Slot(4), vote(2)), (Slot(6), vote(3))]
        );
        assert_eq!(state.promised, Ballot::new(2, NodeId(1)));
        assert_eq!(
            store.learners().expect("learners"),
            BTreeMap::from([("l1".to_owned(), 3)])
        );
        let mut store = store;
        let everything = Change {
            truncate: Some(Slot::ZERO),
            ..Change::default()
        };
        store.write(&[everything]).expect("write");
        assert!(store.load().expect("load").log.is_empty());
    }

    #[test]
    fn the_configuration_and_epoch_ballots_survive_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db");
        let configuration = Configuration {
            epoch: 2,
            seats: vec![Seat {
                address: "http://acceptor-3:7100".into(),
                member: MemberId(3),
            }],
        };
        let stop_sign = Accepted {
            ballot: Ballot::in_epoch(1, 4, NodeId(2)),
            value: Value::Reconfigure(configuration.clone()),
            chosen: true,
        };
        let change = Change {
            configuration: Some(configuration.clone()),
            promised: Some(Ballot::opening(2)),
            put: vec![(Slot(9), stop_sign.clone())],
            ..Change::default()
        };
        {
            let mut store = RocksStore::open(&path).expect("open");
            store.write(&[change]).expect("write");
        }
        let state = RocksStore::open(&path).expect("reopen").load().expect("load");
        assert_eq!(state.configuration, Some(configuration));
        assert_eq!(state.epoch(), 2);
        assert_eq!(state.promised, Ballot::opening(2));
        assert_eq!(state.log.get(&Slot(9)), Some(&stop_sign));
    }

    #[test]
    fn a_data_dir_written_before_epochs_loads_in_epoch_0() {
        use crate::codec::v1_samples::{hex, V1_LOG_KEY, V1_LOG_RECORD, V1_PROMISED_RECORD};
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db");
        {
            let store = RocksStore::open(&path).expect("open");
            store.db.put(KEY_PROMISED, hex(V1_PROMISED_RECORD)).expect("put");
            store.db.put(V1_LOG_KEY, hex(V1_LOG_RECORD)).expect("put");
        }
        let mut store = RocksStore::open(&path).expect("reopen");
        let state = store.load().expect("version 1 records load");
        assert_eq!(state.configuration, None);
        assert_eq!(state.epoch(), 0);
        assert_eq!(state.promised, Ballot::new(4, NodeId(2)));
        let old_vote = state.log.get(&Slot(3)).expect("slot 3").clone();
        assert_eq!(old_vote.ballot, Ballot::new(7, NodeId(2)));
        assert!(old_vote.chosen);
        // Rewritten by this version, the same state comes back.
        let change = Change {
            promised: Some(state.promised),
            put: vec![(Slot(3), old_vote)],
            ..Change::default()
        };
        store.write(&[change]).expect("write");
        let record = store.db.get(KEY_PROMISED).expect("get").expect("present");
        assert_eq!(record[0], codec::VERSION_2);
        assert_eq!(store.load().expect("load"), state);
    }

    #[test]
    fn a_corrupt_configuration_fails_the_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db");
        {
            let store = RocksStore::open(&path).expect("open");
            // Well framed, but a configuration without seats is never written.
            let record = Encoder::default()
                .configuration(&Configuration {
                    epoch: 1,
                    seats: Vec::new(),
                })
                .seal(KEY_CONFIGURATION);
            store.db.put(KEY_CONFIGURATION, record).expect("put");
        }
        let error = RocksStore::open(&path)
            .expect("reopen")
            .load()
            .expect_err("refused")
            .to_string();
        assert!(error.contains("meta/configuration"), "{error}");
    }
}
