//! Domain rules, free of SQL and HTTP: the instance state machine.

pub mod instance;
