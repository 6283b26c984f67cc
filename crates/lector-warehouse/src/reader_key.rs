//! Reader keys (ADR 0006): the warehouse names a reader only by the first 16 bytes, in hex, of
//! HMAC-SHA256 over the reader id under a secret kept in the operational store. The same id
//! always gives the same key, so facts and dimension versions join; without the secret a key
//! cannot be tied back to a reader, and once the reader row is gone not even with it.

use hmac::{Hmac, Mac};
use lector_store::Store;
use sha2::Sha256;

/// Bytes of the HMAC kept in a key (32 hex characters).
const KEY_BYTES: usize = 16;

/// Makes reader keys under one secret. Cheap to clone; keyed once, not per reader.
#[derive(Clone)]
pub struct ReaderKeyer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for ReaderKeyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReaderKeyer(…)")
    }
}

impl ReaderKeyer {
    pub fn new(secret: &[u8]) -> Self {
        ReaderKeyer { mac: Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length") }
    }

    /// A keyer with the store's secret (made there on first use).
    pub async fn from_store(store: &Store) -> lector_store::Result<Self> {
        Ok(Self::new(&store.reader_key_secret().await?))
    }

    /// The key of reader `reader_id`.
    pub fn key(&self, reader_id: i64) -> String {
        let mut mac = self.mac.clone();
        mac.update(reader_id.to_string().as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..KEY_BYTES])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_stable_per_reader_and_secret() {
        let keyer = ReaderKeyer::new(b"secret one");
        let key = keyer.key(42);
        assert_eq!(key.len(), 2 * KEY_BYTES);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(keyer.key(42), key, "the same reader, the same key");
        assert_ne!(keyer.key(43), key);
        assert_ne!(ReaderKeyer::new(b"secret two").key(42), key, "another secret, another key");
    }

    #[test]
    fn a_key_is_the_truncated_hmac_of_the_decimal_id() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").expect("any key length");
        mac.update(b"7");
        let full = hex::encode(mac.finalize().into_bytes());
        assert_eq!(ReaderKeyer::new(b"k").key(7), full[..2 * KEY_BYTES]);
    }
}
