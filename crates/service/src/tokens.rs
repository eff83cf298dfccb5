//! The bearer tokens one credential scope accepts.
//!
//! Three scopes exist: the cluster's internal routes (`--cluster-token`),
//! a sequencer's `POST /next-id` (`--client-token`) and the learner's
//! subscription API (`--subscription-token`). Each takes a comma-separated
//! list, so that a new token can be added before the old one is removed
//! (rotation without downtime), and a `--<name>-file PATH` whose tokens
//! (comma- or line-separated) are read again when the file changes, so a
//! mounted Secret can be rotated without a restart. With neither set, the
//! scope is open.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How often a token file's modification time is looked at, at most.
const FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The tokens of one scope; cheap to clone, shared by every request.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    listed: Vec<Vec<u8>>,
    file: Option<PathBuf>,
    from_file: Mutex<FileTokens>,
}

#[derive(Debug, Default)]
struct FileTokens {
    /// Modification time and length when last read.
    stamp: Option<(SystemTime, u64)>,
    checked_at: Option<Instant>,
    tokens: Vec<Vec<u8>>,
}

impl Tokens {
    /// Tokens from a flag (each entry may itself be comma-separated) and
    /// an optional file.
    pub fn new(listed: &[String], file: Option<PathBuf>) -> Tokens {
        let listed = listed.iter().flat_map(|entry| split(entry)).collect();
        let tokens = Tokens {
            inner: Arc::new(Inner {
                listed,
                file,
                from_file: Mutex::new(FileTokens::default()),
            }),
        };
        // Reads the file now, so that an unreadable one is logged at start.
        tokens.with_tokens(|_| ());
        tokens
    }

    /// A scope with no token: every request passes.
    pub fn open() -> Tokens {
        Tokens::default()
    }

    /// No token configured (a configured file that cannot be read or is
    /// empty closes the scope instead: it was meant to hold tokens).
    pub fn is_open(&self) -> bool {
        self.inner.listed.is_empty() && self.inner.file.is_none()
    }

    /// Whether `presented` is one of the scope's tokens, compared in
    /// constant time against each.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        self.with_tokens(|tokens| {
            let mut accepted = false;
            for token in tokens {
                accepted |= constant_time_eq(presented, token);
            }
            accepted
        })
    }

    /// The token a client of this scope presents: the first listed, else
    /// the first in the file.
    pub fn current(&self) -> Option<String> {
        self.with_tokens(|tokens| tokens.next().map(|t| String::from_utf8_lossy(t).into_owned()))
    }

    /// Runs `f` over the listed tokens, then the file's (read again if it
    /// changed since the last look), without copying them: this is on the
    /// path of every request.
    fn with_tokens<R>(&self, f: impl FnOnce(&mut dyn Iterator<Item = &Vec<u8>>) -> R) -> R {
        let Some(path) = &self.inner.file else {
            return f(&mut self.inner.listed.iter());
        };
        let mut cache = self.inner.from_file.lock().unwrap_or_else(|p| p.into_inner());
        let due = cache
            .checked_at
            .is_none_or(|at| at.elapsed() >= FILE_CHECK_INTERVAL);
        if due {
            cache.checked_at = Some(Instant::now());
            let stamp = std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())));
            if stamp != cache.stamp || stamp.is_none() {
                cache.stamp = stamp;
                cache.tokens = match std::fs::read_to_string(path) {
                    Ok(text) => text.lines().flat_map(split).collect(),
                    Err(error) => {
                        tracing::error!(file = %path.display(), "cannot read the token file; its scope refuses every token: {error}");
                        Vec::new()
                    }
                };
            }
        }
        f(&mut self.inner.listed.iter().chain(&cache.tokens))
    }
}

impl From<Option<String>> for Tokens {
    fn from(token: Option<String>) -> Tokens {
        Tokens::new(token.as_slice(), None)
    }
}

fn split(entry: &str) -> Vec<Vec<u8>> {
    entry
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.as_bytes().to_vec())
        .collect()
}

/// Compares without an early exit, so the time taken does not reveal how
/// many leading bytes of a guess were right. The length is not secret.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The internal client presents the scope's current token on every call,
/// so a rotated token file takes effect without a restart.
impl paxid_client::internal::Credential for Tokens {
    fn current(&self) -> Option<String> {
        Tokens::current(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn a_list_accepts_each_of_its_tokens_and_presents_the_first() {
        let tokens = Tokens::new(&["new,old".into(), " spare ".into()], None);
        assert!(!tokens.is_open());
        for good in ["new", "old", "spare"] {
            assert!(tokens.accepts(good.as_bytes()), "{good}");
        }
        assert!(!tokens.accepts(b"new,old"));
        assert!(!tokens.accepts(b""));
        assert_eq!(tokens.current().as_deref(), Some("new"));
        assert!(Tokens::open().is_open());
        assert!(Tokens::from(None).is_open());
    }

    #[test]
    fn a_file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens");
        std::fs::write(&path, "one\n").expect("write");
        let tokens = Tokens::new(&[], Some(path.clone()));
        assert!(tokens.accepts(b"one"));
        assert!(!tokens.accepts(b"two"));
        // Rotated: the file now holds two (another length, so a changed
        // stamp even where modification times are coarse).
        std::fs::write(&path, "two\nthree\n").expect("write");
        std::thread::sleep(FILE_CHECK_INTERVAL + Duration::from_millis(50));
        assert!(tokens.accepts(b"two") && tokens.accepts(b"three"));
        assert!(!tokens.accepts(b"one"));
        assert_eq!(tokens.current().as_deref(), Some("two"));
        // A file that goes away closes the scope rather than opening it.
        std::fs::remove_file(&path).expect("remove");
        std::thread::sleep(FILE_CHECK_INTERVAL + Duration::from_millis(50));
        assert!(!tokens.is_open());
        assert!(!tokens.accepts(b"two"));
    }
}
