//! An emulator of Huawei Cloud KooGallery, the marketplace side of the merchant protocol, for
//! tests and local development.
//!
//! Today it holds KooGallery's open API ([`openapi`]): the API gateway's `SDK-HMAC-SHA256`
//! check (security.md §12, openapi.md §2) in front of the order query (openapi.md §5), with the
//! documented mock orders. Protocol logic is never re-implemented here: signatures and bodies
//! come from the pure [`koogallery`] crate, exactly as the gateway uses them.

pub mod license;
pub mod openapi;
pub mod usage;

pub use openapi::OpenApi;
