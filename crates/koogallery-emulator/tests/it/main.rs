//! The emulator's tests, in one test binary (`cargo test -p koogallery-emulator --test it`):
//! one module per area, and `merchant`, a small production interface the marketplace calls.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod merchant;

mod control;
mod jointop;
mod kit_signature;
mod license_book;
mod marketplace;
mod openapi;
mod openapi_usage_license;
mod usage_book;
