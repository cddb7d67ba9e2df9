//! An emulator of Huawei Cloud KooGallery, the marketplace side of the merchant protocol, for
//! tests and local development.
//!
//! * [`openapi`]: KooGallery's open API — the API gateway's `SDK-HMAC-SHA256` check
//!   (security.md §12, openapi.md §2) in front of the order query (openapi.md §5), with the
//!   documented mock orders and every order the marketplace placed.
//! * [`marketplace`]: the catalog ([`catalog`]), orders, instances and their lifecycle, and the
//!   signed calls KooGallery makes to the merchant's production interface ([`dispatch`]) with
//!   its retry schedules ([`schedule`]), on an emulated clock ([`clock`]), in memory or
//!   persisted ([`state`]).
//! * [`kit`]: the joint-operation kit sync calls (jointop.md): the buyer's directory and the
//!   bodies of `tenantSync`, `applicationSync`, `allOrgSync`, `authSync`, `singleOrgSync`.
//! * [`control`]: the HTTP/JSON control API that drives it; [`server`] puts everything on one
//!   listener.
//!
//! Protocol logic is never re-implemented here: signatures and bodies come from the pure
//! [`koogallery`] crate, exactly as KooGallery produces and checks them.

pub mod catalog;
pub mod clock;
pub mod control;
pub mod dispatch;
pub mod kit;
pub mod license;
pub mod marketplace;
pub mod openapi;
pub mod schedule;
pub mod server;
pub mod state;
pub mod usage;

pub use clock::EmuClock;
pub use marketplace::{Marketplace, OrderRequest, Settings};
pub use openapi::OpenApi;
pub use server::{Config, Emulator, Running};
