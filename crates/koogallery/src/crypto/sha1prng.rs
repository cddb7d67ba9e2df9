//! Java's `SecureRandom.getInstance("SHA1PRNG")` (SUN provider) seeded once before any output,
//! as KooGallery's sample uses it to turn an access key into an AES key (security.md §13.4).
//!
//! The state update adds bytes as Java **signed** bytes, so the carry can be −1; an unsigned
//! 160-bit addition gives wrong AES-256 keys for almost every seed.

use sha1::{Digest, Sha1};

/// The deterministic SHA1PRNG output stream for one seed.
#[derive(Clone)]
pub struct Sha1Prng {
    state: [u8; 20],
    buffered: [u8; 20],
    used: usize,
}

impl Sha1Prng {
    /// A fresh generator after `setSeed(seed)`.
    pub fn new(seed: &[u8]) -> Self {
        Self {
            state: Sha1::digest(seed).into(),
            buffered: [0; 20],
            used: 20,
        }
    }

    /// Fills `out` with the next bytes of the stream.
    pub fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            if self.used == 20 {
                self.next_block();
            }
            *byte = self.buffered[self.used];
            self.used += 1;
        }
    }

    /// The next `n` bytes of the stream.
    pub fn next_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }

    fn next_block(&mut self) {
        let out: [u8; 20] = Sha1::digest(self.state).into();
        let mut carry: i32 = 1;
        let mut changed = false;
        for (s, o) in self.state.iter_mut().zip(out) {
            let v = i32::from(*s as i8) + i32::from(o as i8) + carry;
            let t = v as u8;
            changed |= *s != t;
            *s = t;
            carry = v >> 8;
        }
        if !changed {
            self.state[0] = self.state[0].wrapping_add(1);
        }
        self.buffered = out;
        self.used = 0;
    }
}

/// The AES key Java's `KeyGenerator.init(bits, SHA1PRNG(seed))` produces: the first 16 or 32
/// bytes of the stream for the UTF-8 bytes of the access key.
pub fn aes_key(access_key: &str, bytes: usize) -> Vec<u8> {
    Sha1Prng::new(access_key.as_bytes()).next_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_reads_equal_one_read() {
        let whole = Sha1Prng::new(b"seed").next_bytes(61);
        let mut g = Sha1Prng::new(b"seed");
        let mut parts = g.next_bytes(7);
        parts.extend(g.next_bytes(20));
        parts.extend(g.next_bytes(34));
        assert_eq!(whole, parts);
    }

    #[test]
    fn aes128_key_is_prefix_of_aes256_key() {
        assert_eq!(aes_key("k", 32)[..16], aes_key("k", 16)[..]);
    }
}
