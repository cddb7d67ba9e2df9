//! koogate: the merchant gateway for the Huawei Cloud KooGallery marketplace.
//!
//! The protocol itself lives in the pure [`koogallery`] crate; this crate holds the product
//! built on it. Today that is the `koogate tools` debugging toolbox ([`cli`]).

pub mod cli;
