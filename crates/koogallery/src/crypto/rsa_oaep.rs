//! RSA-OAEP decryption of the kit `applicationSync.clientSecret` (security.md §14).
//!
//! KooGallery does not document the OAEP hash, the MGF1 hash or the encoding. The value is
//! Base64-decoded and the three plausible parameter sets are tried in order; the caller should
//! record which one matched and pin it per product.
//!
//! Note: the `rsa` crate's decryption is not guaranteed constant-time (RUSTSEC-2023-0071,
//! "Marvin"). This path decrypts one secret per application sync, never attacker-chosen
//! ciphertexts in bulk from an unauthenticated source (the kit signature is checked first).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};

use crate::error::CryptoError;

/// The OAEP parameter sets tried, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OaepParams {
    /// OAEP-SHA-256 with MGF1-SHA-256.
    Sha256Mgf1Sha256,
    /// OAEP-SHA-256 with MGF1-SHA-1 (Java's `RSA/ECB/OAEPWithSHA-256AndMGF1Padding` default).
    Sha256Mgf1Sha1,
    /// OAEP-SHA-1 with MGF1-SHA-1.
    Sha1Mgf1Sha1,
}

impl OaepParams {
    pub const ALL: [OaepParams; 3] = [
        Self::Sha256Mgf1Sha256,
        Self::Sha256Mgf1Sha1,
        Self::Sha1Mgf1Sha1,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Sha256Mgf1Sha256 => "OAEP-SHA256-MGF1-SHA256",
            Self::Sha256Mgf1Sha1 => "OAEP-SHA256-MGF1-SHA1",
            Self::Sha1Mgf1Sha1 => "OAEP-SHA1-MGF1-SHA1",
        }
    }

    fn padding(self) -> Oaep {
        match self {
            Self::Sha256Mgf1Sha256 => Oaep::new::<sha2::Sha256>(),
            Self::Sha256Mgf1Sha1 => Oaep::new_with_mgf_hash::<sha2::Sha256, sha1::Sha1>(),
            Self::Sha1Mgf1Sha1 => Oaep::new::<sha1::Sha1>(),
        }
    }
}

/// Reads a private key from PEM, PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
pub fn private_key_from_pem(pem: &str) -> Result<RsaPrivateKey, CryptoError> {
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| CryptoError::RsaKey(e.to_string()))
}

/// A private key as PKCS#8 PEM (for storing a generated key).
pub fn private_key_to_pem(key: &RsaPrivateKey) -> Result<String, CryptoError> {
    Ok(key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| CryptoError::RsaKey(e.to_string()))?
        .to_string())
}

/// The public key as SPKI PEM, the form uploaded to the seller console.
pub fn public_key_pem(key: &RsaPrivateKey) -> Result<String, CryptoError> {
    RsaPublicKey::from(key)
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| CryptoError::RsaKey(e.to_string()))
}

/// Decrypts a Base64 `clientSecret`, returning the plaintext and the parameter set that worked.
pub fn decrypt_client_secret(
    key: &RsaPrivateKey,
    value: &str,
) -> Result<(String, OaepParams), CryptoError> {
    let ct = BASE64
        .decode(value.trim().replace(' ', "+"))
        .map_err(|_| CryptoError::BadBase64)?;
    for params in OaepParams::ALL {
        if let Ok(pt) = key.decrypt(params.padding(), &ct) {
            return String::from_utf8(pt)
                .map(|s| (s, params))
                .map_err(|_| CryptoError::NotUtf8);
        }
    }
    Err(CryptoError::OaepNoMatch)
}

/// Encrypts a secret as KooGallery would (for the emulator and tests).
pub fn encrypt_client_secret(
    key: &RsaPublicKey,
    secret: &str,
    params: OaepParams,
) -> Result<String, CryptoError> {
    let ct = key
        .encrypt(&mut rand::rngs::OsRng, params.padding(), secret.as_bytes())
        .map_err(|e| CryptoError::RsaKey(e.to_string()))?;
    Ok(BASE64.encode(ct))
}
