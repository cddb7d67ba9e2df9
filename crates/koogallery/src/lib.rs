//! The Huawei Cloud KooGallery merchant protocol, byte for byte.
//!
//! This crate is pure: no sockets, no database, no async runtime. It holds every signature and
//! cipher KooGallery uses ([`sign`], [`crypto`]), Jackson-compatible canonical JSON
//! ([`canonical`]), every timestamp format ([`time`]), query-string decoding with the
//! `+`-as-space repair ([`query`]), the result codes ([`ResultCode`]) and typed request/response
//! models for every activity ([`model`]).
//!
//! Section references such as "security.md §9" point into the protocol reference the project is
//! built from; `docs/protocol.md` in the repository maps each module to those sections.

pub mod canonical;
pub mod crypto;
pub mod error;
pub mod fingerprint;
pub mod model;
pub mod nonce;
pub mod query;
pub mod result_code;
pub mod sign;
pub mod time;

pub use error::{AuthError, CryptoError, Error, FieldError, TimeError};
pub use result_code::ResultCode;
