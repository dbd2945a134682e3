//! Benchmark helpers.

/// The leak-scanning data set shared by the Rust benchmark and the Python comparison
/// (`bench/leak_scan_pyahocorasick.py`): 16 canaries and 10,000 responses of 200–2,000
/// bytes of support-style text, one in a hundred with a canary planted in it (plainly,
/// base64, hex or reversed). Deterministic.
pub fn leak_data() -> (Vec<String>, Vec<String>) {
    use base64::Engine;
    let mut state: u64 = 0x1EAC_5CA7;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let canaries: Vec<String> = (0..16)
        .map(|_| format!("VAIA-CANARY-{:016x}", next()))
        .collect();
    const WORDS: &[&str] = &[
        "order", "shipping", "returns", "within", "days", "refund", "the", "your", "parcel",
        "tracking", "store", "hours", "warranty", "jacket", "we", "can", "help", "with", "that",
        "please", "sorry", "account", "password", "delivery", "express", "euros",
    ];
    let mut responses = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let len = 200 + (next() % 1800) as usize;
        let mut text = String::with_capacity(len + 64);
        while text.len() < len {
            text.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
            text.push(if next() % 9 == 0 { '.' } else { ' ' });
        }
        if i % 100 == 7 {
            let c = &canaries[(next() % 16) as usize];
            let planted = match (i / 100) % 4 {
                0 => c.clone(),
                1 => base64::engine::general_purpose::STANDARD.encode(format!("code {c}")),
                2 => hex::encode(c),
                _ => c.chars().rev().collect(),
            };
            text.push_str(&planted);
        }
        responses.push(text);
    }
    (canaries, responses)
}

/// A field of `/proc/<pid>/status` in KiB: `"VmRSS:"` (resident set) or `"VmHWM:"` (its
/// peak).
pub fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
