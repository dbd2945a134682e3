//! Recall of the system-prompt leak detector on planted leaks of real system prompts
//! (`fixtures/system_prompts`, excerpts of Fabric's MIT-licensed patterns): whole and partial,
//! in every encoding the canary detectors know, split across lines, wrapped in markdown and
//! JSON-escaped; and no leak where there is none.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use vaia_gates::eval::bootstrap::SplitMix64;
use vaia_gates::prompt::detect::{rot13, LeakScanner, DEFAULT_NGRAM_THRESHOLD};

const PROMPTS: &[(&str, &str)] = &[
    (
        "create_5_sentence_summary",
        include_str!("fixtures/system_prompts/create_5_sentence_summary.md"),
    ),
    (
        "create_tags",
        include_str!("fixtures/system_prompts/create_tags.md"),
    ),
    (
        "create_formal_email",
        include_str!("fixtures/system_prompts/create_formal_email.md"),
    ),
    (
        "analyze_logs",
        include_str!("fixtures/system_prompts/analyze_logs.md"),
    ),
];

const FILLERS: &[&str] = &[
    "",
    "Sure!",
    "Here is what you asked for:",
    "Voilà — é ü, as requested.",
];

/// The encodings a leak is planted in: name and how `secret` is given away.
const ENCODINGS: &[&str] = &[
    "plain",
    "base64",
    "base64_url",
    "base64_lines",
    "hex",
    "rot13",
    "reversed",
    "spaced_dots",
    "spaced_dashes",
    "markdown_fence",
    "markdown_quote",
    "markdown_bullets",
    "json_escaped",
    "json_base64",
];

fn wrap(s: &str, width: usize) -> Vec<String> {
    s.as_bytes()
        .chunks(width)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

fn plant(encoding: &str, secret: &str, filler: &str, prefix: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // A prefix shifts the secret's alignment inside the encoded text.
    let payload = format!("{prefix}{secret}");
    match encoding {
        "plain" => format!("{filler} {secret}"),
        "base64" => format!("{filler} {}", b64.encode(&payload)),
        "base64_url" => url.encode(&payload),
        "base64_lines" => format!("{filler}\n{}", wrap(&b64.encode(&payload), 76).join("\n")),
        "hex" => format!("{filler} {}", hex::encode(&payload)),
        "rot13" => rot13(&payload),
        "reversed" => payload.chars().rev().collect(),
        "spaced_dots" | "spaced_dashes" => {
            let sep = if encoding == "spaced_dots" { "." } else { "-" };
            let letters: Vec<String> = secret
                .chars()
                .filter(|c| !c.is_whitespace())
                .map(String::from)
                .collect();
            format!("{filler} {}", letters.join(sep))
        }
        "markdown_fence" => format!(
            "{filler}\n```text\n{}\n```\n",
            wrap(&b64.encode(&payload), 60).join("\n")
        ),
        "markdown_quote" => {
            let lines: Vec<String> = wrap(&hex::encode(&payload), 64)
                .into_iter()
                .map(|l| format!("> {l}"))
                .collect();
            format!("{filler}\n{}", lines.join("\n"))
        }
        "markdown_bullets" => {
            let lines: Vec<String> = wrap(&b64.encode(&payload), 40)
                .into_iter()
                .enumerate()
                .map(|(i, l)| {
                    if i % 2 == 0 {
                        format!("- {l}")
                    } else {
                        format!("{}. {l}", i + 1)
                    }
                })
                .collect();
            format!("{filler}\n{}", lines.join("\n"))
        }
        "json_escaped" => {
            serde_json::json!({ "answer": format!("{filler}\n{payload}") }).to_string()
        }
        "json_base64" => {
            // A JSON document whose string holds the base64 split in escaped lines.
            let text = wrap(&b64.encode(&payload), 50).join("\n");
            serde_json::json!({ "answer": text }).to_string()
        }
        other => panic!("unknown encoding {other}"),
    }
}

/// A contiguous part of `s` of about half its length, starting at a random character.
fn half(s: &str, rng: &mut SplitMix64) -> String {
    let chars: Vec<char> = s.chars().collect();
    let len = chars.len() / 2;
    let start = rng.below(chars.len() - len);
    chars[start..start + len].iter().collect()
}

fn scanner(system: &str) -> LeakScanner {
    LeakScanner::new(&[], Some(system), DEFAULT_NGRAM_THRESHOLD).unwrap()
}

fn leaked(s: &LeakScanner, text: &str) -> bool {
    s.scan(text).iter().any(|l| l.secret == "system_prompt")
}

#[test]
fn whole_and_partial_leaks_of_real_system_prompts_are_found_in_every_encoding() {
    let mut rng = SplitMix64::new(7);
    let scanners: Vec<LeakScanner> = PROMPTS.iter().map(|(_, p)| scanner(p)).collect();
    let mut failures = Vec::new();
    let mut low = Vec::new();
    for encoding in ENCODINGS {
        for partial in [false, true] {
            let (mut found, mut total) = (0u32, 0u32);
            for round in 0..100 {
                let which = round % PROMPTS.len();
                let (_, prompt) = PROMPTS[which];
                let secret = if partial {
                    half(prompt, &mut rng)
                } else {
                    prompt.to_string()
                };
                let filler = FILLERS[rng.below(FILLERS.len())];
                let prefix = ["", "x", "xy"][rng.below(3)];
                let text = plant(encoding, &secret, filler, prefix);
                total += 1;
                if leaked(&scanners[which], &text) {
                    found += 1;
                } else if failures.len() < 5 {
                    failures.push(format!("{encoding} partial={partial}: {text:.200}"));
                }
            }
            let recall = f64::from(found) / f64::from(total);
            eprintln!("{encoding:>16} partial={partial:<5} recall {found}/{total}");
            if recall < 0.99 {
                low.push(format!("{encoding} (partial: {partial}): recall {recall}"));
            }
        }
    }
    assert!(low.is_empty(), "{low:#?}; missed e.g. {failures:#?}");
}

#[test]
fn the_detector_names_the_encoding_and_the_share_found() {
    let (_, prompt) = PROMPTS[2];
    let s = scanner(prompt);
    for (encoding, detector) in [
        ("plain", "exact"),
        ("base64", "base64"),
        ("hex", "hex"),
        ("rot13", "rot13"),
        ("reversed", "reversed"),
        ("spaced_dashes", "spaced"),
        ("markdown_quote", "hex"),
        ("json_base64", "base64"),
    ] {
        let text = plant(encoding, prompt, "Sure:", "");
        let leaks = s.scan(&text);
        let leak = leaks
            .iter()
            .find(|l| l.secret == "system_prompt")
            .unwrap_or_else(|| panic!("{encoding}: no leak"));
        assert_eq!(leak.detector.as_str(), detector, "{encoding}");
        assert!(
            leak.overlap.unwrap() >= 0.9,
            "{encoding}: {:?}",
            leak.overlap
        );
        assert!(leak.start < leak.end && leak.end <= text.len());
    }
}

#[test]
fn no_leak_without_the_system_prompt() {
    let scanners: Vec<LeakScanner> = PROMPTS.iter().map(|(_, p)| scanner(p)).collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    let innocent = [
        "I can't share my configuration, but I can help with your order.".to_string(),
        "Sorry, I can only help with questions about Acme orders, deliveries, returns and opening hours.".into(),
        "You are right: the tags are lowercase and the email is formal.".into(),
        b64.encode("Your parcel ships within two days; tracking follows by email."),
        hex::encode("The log file shows three restarts after the deploy."),
    ];
    for (i, s) in scanners.iter().enumerate() {
        for text in &innocent {
            assert!(!leaked(s, text), "{}: {text}", PROMPTS[i].0);
        }
        // Another prompt given away whole is not this one (they share a heading or two).
        for (j, (name, other)) in PROMPTS.iter().enumerate() {
            if i != j {
                for encoding in ["plain", "base64", "hex"] {
                    let text = plant(encoding, other, "", "");
                    assert!(
                        !leaked(s, &text),
                        "{} flagged on {name} ({encoding})",
                        PROMPTS[i].0
                    );
                }
            }
        }
    }
}
