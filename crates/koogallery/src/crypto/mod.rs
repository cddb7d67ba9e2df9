//! Java-compatible field encryption (security.md §13) and RSA-OAEP decryption of the kit
//! `clientSecret` (security.md §14).

pub mod field;
pub mod rsa_oaep;
pub mod sha1prng;

pub use field::{FieldCipher, KeySize};
pub use sha1prng::Sha1Prng;
