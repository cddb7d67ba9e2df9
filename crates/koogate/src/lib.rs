//! koogate: the merchant gateway for the Huawei Cloud KooGallery marketplace.
//!
//! The protocol itself lives in the pure [`koogallery`] crate; this crate holds the product
//! built on it: the production-interface server and the command line.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conformance;
pub mod domain;
pub mod error;
pub mod http;
pub mod jobs;
pub mod metering;
pub mod openapi;
pub mod ops;
pub mod produce;
pub mod provision;
pub mod seal;
pub mod service;
pub mod signed_call;
pub mod store;
pub mod webhooks;
