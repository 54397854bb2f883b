//! Seeded choices by log position: the same answer for the same seed, input and line on every
//! run, whatever the rate, the concurrency or the timing (`--sample`, `--mix`).

/// Whether the line `line` of input `input` is among a `share` (in [0, 1]) of lines, as `seed`
/// picks them.
pub fn chosen(seed: u64, input: usize, line: u64, share: f64) -> bool {
    let h = splitmix64(seed ^ ((input as u64) << 48) ^ line);
    (h as f64) < share * (u64::MAX as f64)
}

/// A well-mixed 64-bit hash of one number (the SplitMix64 finaliser).
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
