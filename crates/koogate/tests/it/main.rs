//! koogate's black-box tests, in one test binary (`cargo test -p koogate --test it`): one
//! module per area, and the shared harness in `common`. One binary instead of one per file,
//! because linking the whole koogate library into each dominated the build.
//!
//! A test that runs on both databases is two tests, `<module>::<name>::sqlite` and
//! `<module>::<name>::postgres` (see `common::backend_tests!`): `cargo test -p koogate --test it
//! postgres` runs only the PostgreSQL ones.
//!
//! The tests share one process: none may change process-wide state (environment variables,
//! the current directory); child processes get their environment through `Command::env`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

mod api;
mod config;
mod conformance_cli;
mod disk_full;
mod e2e_emulator;
mod emulator_cli;
mod instances_cli;
mod load_cli;
mod openapi_client;
mod orders;
mod processes;
mod produce_v1;
mod produce_v2;
mod provisioners;
mod tls;
mod tools_cli;
mod usage;
mod webhooks;
