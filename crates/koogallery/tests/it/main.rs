//! The protocol library's tests, in one test binary (`cargo test -p koogallery --test it`):
//! the public test vectors (`vectors`), property tests (`properties`) and RSA-OAEP against
//! ciphertexts made with openssl (`rsa_oaep`). Their inputs are in `tests/fixtures`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod properties;
mod rsa_oaep;
mod vectors;
