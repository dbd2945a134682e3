//! The built-in attack corpus: every item is taken from an openly licensed collection and
//! says which (`source`, `licence`, `source_url`), ids are unique, and it covers the seven
//! categories with several hundred attacks. See `corpus/README.md` and `corpus/build.py`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use vaia_gates::prompt::{parse_corpus, BUILTIN_CORPUS, CATEGORIES};

/// Licences the corpus may draw from (SPDX ids): permissive and attribution-only.
const OPEN_LICENCES: &[&str] = &[
    "Apache-2.0",
    "MIT",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "CC0-1.0",
    "CC-BY-4.0",
];

fn items() -> Vec<Value> {
    BUILTIN_CORPUS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn field<'a>(item: &'a Value, name: &str) -> &'a str {
    item.get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{}: no `{name}`", item["id"]))
}

#[test]
fn every_item_names_an_open_source_with_licence_and_url() {
    let items = items();
    for item in &items {
        let id = field(item, "id");
        assert!(
            !field(item, "source").trim().is_empty(),
            "{id}: empty source"
        );
        let licence = field(item, "licence");
        assert!(
            OPEN_LICENCES.contains(&licence),
            "{id}: licence {licence:?} is not an open licence"
        );
        let url = field(item, "source_url");
        assert!(
            url.starts_with("https://github.com/") && url.contains("/blob/"),
            "{id}: source_url {url:?} does not name a repository file"
        );
        // A commit pins the version the item was taken from.
        let commit = url
            .split("/blob/")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap();
        assert!(
            commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
            "{id}: no commit in {url}"
        );
        // An item composed with a second source names that one the same way.
        if let Some(also) = item.get("also_from") {
            assert!(OPEN_LICENCES.contains(&field(also, "licence")), "{id}");
            assert!(
                field(also, "source_url").starts_with("https://github.com/"),
                "{id}"
            );
        }
    }
}

#[test]
fn ids_are_unique_and_the_loader_accepts_the_extra_fields() {
    let items = items();
    let ids: HashSet<&str> = items.iter().map(|i| field(i, "id")).collect();
    assert_eq!(ids.len(), items.len(), "duplicate ids");
    let parsed = parse_corpus("builtin", BUILTIN_CORPUS).unwrap();
    assert_eq!(parsed.len(), items.len());
}

#[test]
fn several_hundred_items_across_all_seven_categories() {
    let items = items();
    assert!(items.len() >= 300, "{} items", items.len());
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &items {
        *per.entry(field(item, "category")).or_default() += 1;
    }
    for cat in CATEGORIES {
        let n = per.get(cat).copied().unwrap_or(0);
        assert!(n >= 20, "{cat}: {n} items");
    }
    assert!(
        per.keys().all(|c| CATEGORIES.contains(c)),
        "unknown category in {per:?}"
    );
}
