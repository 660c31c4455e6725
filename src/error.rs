//! Error codes: the `code` of every `OutboxError` a caller can see.

/// Each variant is a stable string code in JS (`OutboxError.code`), its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub enum ErrorCode {
    /// The transaction is malformed (keys, priority, handler name, http request...).
    InvalidTransaction,
    /// `Outbox.open` got an option it does not know, or a value out of range.
    InvalidOptions,
    /// No handler of that name is registered (and it is not the built-in `http`).
    UnknownHandler,
    /// `mutations` or `metadata` cannot be structured-cloned (functions, symbols...).
    NotSerializable,
    /// The browser refused the write: the origin's storage quota is used up.
    QuotaExceeded,
    /// IndexedDB is missing, blocked or failed.
    StorageUnavailable,
    /// The outbox was closed.
    Closed,
    /// The transaction is in the dead letters.
    Dead,
    /// No transaction with that id (where one is required, e.g. `retryDead`).
    NotFound,
    /// The transaction is being sent and cannot be removed now.
    InFlight,
    /// `settled` of a transaction that `remove` cancelled.
    Removed,
    /// This context no longer leads: another one bumped the epoch (a fenced write).
    NotLeader,
    /// `import` got a document that is not a backup this version reads, or holds a
    /// malformed record; the message says where.
    InvalidBackup,
}

impl ErrorCode {
    const ALL: [ErrorCode; 13] = [
        Self::InvalidTransaction,
        Self::InvalidOptions,
        Self::UnknownHandler,
        Self::NotSerializable,
        Self::QuotaExceeded,
        Self::StorageUnavailable,
        Self::Closed,
        Self::Dead,
        Self::NotFound,
        Self::InFlight,
        Self::Removed,
        Self::NotLeader,
        Self::InvalidBackup,
    ];

    /// The code named `s` (as another context reported it).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The code as JS sees it (`OutboxError.code`), the variant's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidTransaction => "InvalidTransaction",
            Self::InvalidOptions => "InvalidOptions",
            Self::UnknownHandler => "UnknownHandler",
            Self::NotSerializable => "NotSerializable",
            Self::QuotaExceeded => "QuotaExceeded",
            Self::StorageUnavailable => "StorageUnavailable",
            Self::Closed => "Closed",
            Self::Dead => "Dead",
            Self::NotFound => "NotFound",
            Self::InFlight => "InFlight",
            Self::Removed => "Removed",
            Self::NotLeader => "NotLeader",
            Self::InvalidBackup => "InvalidBackup",
        }
    }
}

/// An error with its code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// What kind of failure: match on this.
    pub code: ErrorCode,
    /// What went wrong, for a log or a person.
    pub message: String,
}

impl Error {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

/// What the outbox's calls return.
pub type Result<T> = std::result::Result<T, Error>;

/// `n` in decimal. Messages are joined with `concat` and quote their numbers with this:
/// without `format!` the wasm links none of the formatting machinery (about 1 KB gzipped).
pub fn decimal(n: u64) -> String {
    // Digit by digit from the highest power of ten in `n`: no buffer to reverse and no
    // UTF-8 check to link.
    let mut unit = 1;
    while n / unit >= 10 {
        unit *= 10;
    }
    let mut s = String::new();
    while unit > 0 {
        s.push(char::from(b'0' + (n / unit % 10) as u8));
        unit /= 10;
    }
    s
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_name() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("Nope"), None);
    }

    #[test]
    fn decimal_writes_what_format_does() {
        for n in [0, 7, 10, 99, 100, 1_000_000_007, u64::MAX] {
            assert_eq!(decimal(n), n.to_string());
        }
    }
}
