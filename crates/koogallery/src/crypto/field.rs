//! Field encryption of KooGallery V1 (security.md §13):
//! `value = IV16 || Base64(AES-CBC-PKCS5(key = SHA1PRNG(accessKey), iv = ASCII(IV16), UTF8(text)))`.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::Rng;

use crate::crypto::sha1prng::aes_key;
use crate::error::CryptoError;

/// IV length in characters (and bytes: the IV is ASCII).
pub const IV_LEN: usize = 16;

/// AES key size; the wire calls it `encryptType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeySize {
    /// `encryptType` `"1"`, the default.
    #[default]
    Aes256,
    /// `encryptType` `"2"`.
    Aes128,
}

impl KeySize {
    /// The `encryptType` value.
    pub const fn encrypt_type(self) -> &'static str {
        match self {
            Self::Aes256 => "1",
            Self::Aes128 => "2",
        }
    }

    /// Parses `encryptType` strictly (`"1"` or `"2"`).
    pub fn from_encrypt_type(t: &str) -> Result<Self, CryptoError> {
        match t {
            "1" => Ok(Self::Aes256),
            "2" => Ok(Self::Aes128),
            other => Err(CryptoError::BadEncryptType(other.to_owned())),
        }
    }

    /// From a key size in bits (128 or 256).
    pub fn from_bits(bits: u32) -> Result<Self, CryptoError> {
        match bits {
            256 => Ok(Self::Aes256),
            128 => Ok(Self::Aes128),
            other => Err(CryptoError::BadKeySize(other)),
        }
    }

    pub const fn bits(self) -> u32 {
        match self {
            Self::Aes256 => 256,
            Self::Aes128 => 128,
        }
    }

    const fn key_bytes(self) -> usize {
        (self.bits() / 8) as usize
    }
}

/// A field cipher for one access key and key size. Deriving the key costs a few SHA-1 rounds,
/// so keep one per product rather than one per value.
#[derive(Clone)]
pub struct FieldCipher {
    key: Vec<u8>,
    size: KeySize,
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldCipher")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl FieldCipher {
    pub fn new(access_key: &str, size: KeySize) -> Self {
        Self {
            key: aes_key(access_key, size.key_bytes()),
            size,
        }
    }

    pub const fn key_size(&self) -> KeySize {
        self.size
    }

    /// The derived AES key (for diagnostics and tests; never log it).
    pub fn key_bytes(&self) -> &[u8] {
        &self.key
    }

    /// Encrypts with a fresh IV of 16 characters drawn from `[A-Za-z0-9]` by the OS CSPRNG.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let iv: String = rand::rngs::OsRng
            .sample_iter(rand::distributions::Alphanumeric)
            .take(IV_LEN)
            .map(char::from)
            .collect();
        // The IV is 16 ASCII characters by construction.
        self.encrypt_with_iv(plaintext, &iv).unwrap_or_default()
    }

    /// Encrypts with the given IV, which must be exactly 16 ASCII characters.
    pub fn encrypt_with_iv(&self, plaintext: &str, iv: &str) -> Result<String, CryptoError> {
        let iv_bytes = iv_bytes(iv)?;
        let ct = match self.size {
            KeySize::Aes256 => cbc::Encryptor::<aes::Aes256>::new_from_slices(&self.key, &iv_bytes)
                .map_err(|_| CryptoError::BadKeySize(256))?
                .encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes()),
            KeySize::Aes128 => cbc::Encryptor::<aes::Aes128>::new_from_slices(&self.key, &iv_bytes)
                .map_err(|_| CryptoError::BadKeySize(128))?
                .encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes()),
        };
        Ok(format!("{iv}{}", BASE64.encode(ct)))
    }

    /// Decrypts a received value. Spaces are turned back into `+` first (a `+` mangled by form
    /// decoding, security.md §5). Every failure is an error, never a panic, and never echoes
    /// the value.
    pub fn decrypt(&self, value: &str) -> Result<String, CryptoError> {
        let value = value.replace(' ', "+");
        if value.len() <= IV_LEN {
            return Err(CryptoError::TooShort);
        }
        if !value.is_char_boundary(IV_LEN) {
            return Err(CryptoError::BadIv);
        }
        let (iv, b64) = value.split_at(IV_LEN);
        let iv_bytes = iv_bytes(iv)?;
        let ct = BASE64.decode(b64).map_err(|_| CryptoError::BadBase64)?;
        if ct.is_empty() || ct.len() % 16 != 0 {
            return Err(CryptoError::BadCiphertextLength);
        }
        let pt = match self.size {
            KeySize::Aes256 => cbc::Decryptor::<aes::Aes256>::new_from_slices(&self.key, &iv_bytes)
                .map_err(|_| CryptoError::BadKeySize(256))?
                .decrypt_padded_vec_mut::<Pkcs7>(&ct),
            KeySize::Aes128 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&self.key, &iv_bytes)
                .map_err(|_| CryptoError::BadKeySize(128))?
                .decrypt_padded_vec_mut::<Pkcs7>(&ct),
        }
        .map_err(|_| CryptoError::BadPadding)?;
        String::from_utf8(pt).map_err(|_| CryptoError::NotUtf8)
    }
}

fn iv_bytes(iv: &str) -> Result<[u8; IV_LEN], CryptoError> {
    if !iv.is_ascii() {
        return Err(CryptoError::BadIv);
    }
    iv.as_bytes().try_into().map_err(|_| CryptoError::BadIv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_iv_is_alphanumeric_and_fresh() {
        let c = FieldCipher::new("k", KeySize::Aes256);
        let (a, b) = (c.encrypt("x"), c.encrypt("x"));
        assert_ne!(a, b);
        assert!(a[..16].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(c.decrypt(&a).unwrap(), "x");
        assert_eq!(c.decrypt(&b).unwrap(), "x");
    }

    #[test]
    fn every_failure_is_specific() {
        let c = FieldCipher::new("my-access-key", KeySize::Aes256);
        let good = c
            .encrypt_with_iv("admin@example.com", "abcdEFGH12345678")
            .unwrap();
        assert_eq!(c.decrypt("abcdEFGH12345678"), Err(CryptoError::TooShort));
        assert_eq!(c.decrypt("short"), Err(CryptoError::TooShort));
        assert_eq!(
            c.decrypt("abcdEFGH12345678!!!!"),
            Err(CryptoError::BadBase64)
        );
        assert_eq!(
            c.decrypt("abcdEFGH12345678AAAA"),
            Err(CryptoError::BadCiphertextLength)
        );
        assert_eq!(
            c.decrypt("中bcdEFGH12345678AAAAAAAAAAAAAAAAAAAAAA=="),
            Err(CryptoError::BadIv)
        );
        assert_eq!(
            c.decrypt("abcdEFGH1234567中AAAAAAAAAAAAAAAAAAAAAA=="),
            Err(CryptoError::BadIv)
        );
        // Flipping the last ciphertext byte breaks the padding.
        let mut raw = BASE64.decode(&good[16..]).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0x01;
        let tampered = format!("abcdEFGH12345678{}", BASE64.encode(&raw));
        assert_eq!(c.decrypt(&tampered), Err(CryptoError::BadPadding));
        assert_eq!(c.encrypt_with_iv("x", "short"), Err(CryptoError::BadIv));
        assert_eq!(
            c.encrypt_with_iv("x", "abcdEFGH1234567中"),
            Err(CryptoError::BadIv)
        );
    }

    #[test]
    fn encrypt_type_mapping() {
        assert_eq!(KeySize::from_encrypt_type("1"), Ok(KeySize::Aes256));
        assert_eq!(KeySize::from_encrypt_type("2"), Ok(KeySize::Aes128));
        assert!(KeySize::from_encrypt_type("3").is_err());
        assert_eq!(KeySize::from_bits(128), Ok(KeySize::Aes128));
        assert_eq!(KeySize::from_bits(192), Err(CryptoError::BadKeySize(192)));
        assert_eq!(KeySize::default().encrypt_type(), "1");
    }
}
