//! AES-256-GCM sealing of secrets at rest (corp secrets, proxy passwords, TOTP seeds).
//!
//! Sealed text is `v1.<key id>.<base64(nonce ‖ ciphertext)>`; the key id (first 8 hex digits of
//! SHA-256 of the key) lets a rotation command find values sealed under an older key. A sealer
//! seals under its current key and opens under any key of its ring (the current one and the
//! `secrets.previous_keys`), so processes can move to a new key one at a time while values
//! sealed under the old one stay readable until they are re-sealed.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, AeadCore, OsRng},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("master key must be 32 bytes of base64")]
    BadKey,
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value belongs to another master key ({0})")]
    WrongKey(String),
    #[error("sealed value failed authentication")]
    Tampered,
}

/// Seals under one master key; opens under it or any earlier key it was given.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
    key_id: String,
    /// Earlier keys, for opening only.
    previous: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key_id", &self.key_id)
            .field(
                "previous",
                &self.previous.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Sealer {
    pub fn from_base64(key: &str) -> Result<Self, SealError> {
        let bytes = STANDARD.decode(key.trim()).map_err(|_| SealError::BadKey)?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(key: &[u8]) -> Result<Self, SealError> {
        if key.len() != 32 {
            return Err(SealError::BadKey);
        }
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| SealError::BadKey)?;
        let digest = Sha256::digest(key);
        let key_id = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            cipher,
            key_id,
            previous: Vec::new(),
        })
    }

    /// Also opens values sealed under `older` (and under the keys `older` itself opens).
    pub fn opening_also(mut self, older: &Self) -> Self {
        for (id, cipher) in std::iter::once((&older.key_id, &older.cipher))
            .chain(older.previous.iter().map(|(id, c)| (id, c)))
        {
            if *id != self.key_id && !self.previous.iter().any(|(known, _)| known == id) {
                self.previous.push((id.clone(), cipher.clone()));
            }
        }
        self
    }

    /// Whether `sealed` is under this sealer's current key (nothing to re-seal).
    pub fn is_current(&self, sealed: &str) -> bool {
        sealed.split('.').nth(1) == Some(self.key_id.as_str())
    }

    /// A fresh random key, base64-encoded.
    pub fn generate_key() -> String {
        STANDARD.encode(Aes256Gcm::generate_key(OsRng))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        // Encryption with a valid key and a 96-bit nonce cannot fail for inputs this size.
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .unwrap_or_default();
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        format!("v1.{}.{}", self.key_id, STANDARD.encode(blob))
    }

    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Malformed);
        };
        let cipher = if key_id == self.key_id {
            &self.cipher
        } else {
            match self.previous.iter().find(|(id, _)| id == key_id) {
                Some((_, cipher)) => cipher,
                None => return Err(SealError::WrongKey(key_id.to_owned())),
            }
        };
        let blob = STANDARD.decode(body).map_err(|_| SealError::Malformed)?;
        if blob.len() < 12 + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = blob.split_at(12);
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| SealError::Tampered)?;
        String::from_utf8(plain).map_err(|_| SealError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fresh_nonce() {
        let sealer = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        let a = sealer.seal("corp-secret");
        let b = sealer.seal("corp-secret");
        assert_ne!(a, b, "each seal uses a new nonce");
        assert!(!a.contains("corp-secret"));
        assert_eq!(sealer.open(&a).unwrap(), "corp-secret");
    }

    #[test]
    fn tampering_and_wrong_key_are_detected() {
        let sealer = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        let other = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        let sealed = sealer.seal("x");
        assert!(matches!(other.open(&sealed), Err(SealError::WrongKey(_))));
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(matches!(
            sealer.open(&tampered),
            Err(SealError::Tampered | SealError::Malformed)
        ));
    }

    #[test]
    fn a_ring_opens_values_of_earlier_keys_and_seals_under_the_current_one() {
        let old = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        let older = Sealer::from_base64(&Sealer::generate_key()).unwrap();
        let new = Sealer::from_base64(&Sealer::generate_key())
            .unwrap()
            .opening_also(&old.clone().opening_also(&older));
        let (a, b) = (old.seal("a"), older.seal("b"));
        assert_eq!(new.open(&a).unwrap(), "a");
        assert_eq!(new.open(&b).unwrap(), "b");
        let sealed = new.seal("c");
        assert!(new.is_current(&sealed) && !new.is_current(&a));
        assert!(matches!(old.open(&sealed), Err(SealError::WrongKey(_))));
    }

    #[test]
    fn rejects_short_keys() {
        assert_eq!(Sealer::from_bytes(&[0; 16]).unwrap_err(), SealError::BadKey);
    }
}
