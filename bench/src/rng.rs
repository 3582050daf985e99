//! Fast random numbers: SplitMix64, for test data, run tags and boundaries -
//! never for secrets.
//!
//! The upload benchmark needs a stream of bytes that is cheap to make and the
//! same for the same seed, so a file can be regenerated and checked anywhere.

use std::hash::{BuildHasher, Hasher};
use std::time::SystemTime;

pub struct Rng(u64);

impl Rng {
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator that differs from run to run: the standard library's
    /// per-process random hash keys, mixed with the clock.
    pub fn from_entropy() -> Rng {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        hasher.write_u128(now);
        hasher.write_u32(std::process::id());
        Rng(hasher.finish())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fills `buf` with the next bytes of the stream. The stream is the same
    /// for a seed whatever the buffer sizes, as long as each is a multiple of 8.
    /// Whole words first, so the loop compiles to plain 8-byte stores: the
    /// upload run generates (and compares) a gigabyte with this.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut words = buf.chunks_exact_mut(8);
        for word in &mut words {
            word.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = words.into_remainder();
        if !rest.is_empty() {
            let bytes = self.next_u64().to_le_bytes();
            rest.copy_from_slice(&bytes[..rest.len()]);
        }
    }

    /// `len` lowercase hex digits.
    pub fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from_digit((self.next_u64() % 16) as u32, 16).unwrap_or('0'))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_depends_only_on_the_seed() {
        let mut whole = vec![0u8; 64];
        Rng::seeded(7).fill(&mut whole);
        let mut pieces = vec![0u8; 64];
        let mut rng = Rng::seeded(7);
        rng.fill(&mut pieces[..16]);
        rng.fill(&mut pieces[16..]);
        assert_eq!(whole, pieces);
        let mut other = vec![0u8; 64];
        Rng::seeded(8).fill(&mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn a_length_that_is_not_whole_words_ends_with_part_of_the_next_one() {
        let mut words = [0u8; 16];
        Rng::seeded(3).fill(&mut words);
        let mut short = [0u8; 13];
        Rng::seeded(3).fill(&mut short);
        assert_eq!(short, words[..13]);
    }

    #[test]
    fn hex_tags_have_the_asked_length() {
        let tag = Rng::seeded(1).hex(8);
        assert_eq!(tag.len(), 8);
        assert!(tag.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
