//! How a DynamoDB item's `body` (a run's, an events item's or a registry record's JSON) is
//! stored: the one home of its encoding, for the writers and for every reader (the run
//! store, the registry's records, the `realtime` function's stream images).
//!
//! DynamoDB bills a write per KB of the item (twice in a transaction, and a run is
//! rewritten on every transition), so a body is written as raw DEFLATE with a preset
//! dictionary when that is smaller than the JSON: a binary (`B`) `body` and a `dict`
//! number naming the dictionary. The dictionary is JSON shaped like what is stored (the
//! events and the final run of a five-gate run of the example agent), so field names, the
//! default policy and the gates' summaries cost back-references instead of literals: a
//! five-gate run's 4.8 KB of JSON is about 390 bytes stored, against 1.8 KB deflated alone
//! (see `bench/COST.md`).
//!
//! Read in every form written before: a string (`S`) body is plain JSON; a binary body
//! without `dict` is DEFLATE without a dictionary.
//!
//! A dictionary never changes once released: items name it by id. A better one gets a new
//! id and the old one stays, to read what it wrote ([`tests::dictionary_1_never_changes`]).

use crate::dynamo::Item;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use miniz_oxide::deflate::core::{
    compress_to_output, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};
use vaia_core::ports::{PortError, PortResult};

/// Largest JSON a compressed `body` may inflate to (a run or an event is a few KB; an
/// item is at most 400 KB): a corrupt or hostile attribute costs no more memory than this.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// DEFLATE level of stored bodies: small JSON documents, compressed once per write.
const LEVEL: i32 = 6;

/// The attribute naming the dictionary a binary body was compressed with.
const DICT_ATTR: &str = "dict";

/// The dictionary new bodies are written with.
const CURRENT: u64 = 1;

/// Every released dictionary, by id. Each is at most 32 KiB (DEFLATE's window: what lies
/// further back cannot be referred to) and fits one stored block.
const DICTIONARIES: &[(u64, &[u8])] = &[(1, include_bytes!("body_dictionary_1.jsonl"))];

const _: () = {
    let mut i = 0;
    while i < DICTIONARIES.len() {
        assert!(DICTIONARIES[i].1.len() <= 32 * 1024);
        i += 1;
    }
};

fn dictionary(id: u64) -> Option<&'static [u8]> {
    DICTIONARIES
        .iter()
        .find(|(known, _)| *known == id)
        .map(|(_, d)| *d)
}

/// Puts `json` into `item` as its `body` (and `dict` when compressed with one).
pub(crate) fn insert(item: &mut Item, json: String) {
    let dict = dictionary(CURRENT).unwrap_or_default();
    let deflated = deflate_after(dict, json.as_bytes());
    if deflated.len() < json.len() {
        item.insert("body".into(), AttributeValue::B(Blob::new(deflated)));
        item.insert(DICT_ATTR.into(), AttributeValue::N(CURRENT.to_string()));
    } else {
        item.insert("body".into(), AttributeValue::S(json));
        item.remove(DICT_ATTR);
    }
}

/// Puts bytes that are not text into `item` as a binary `body`, DEFLATE without a
/// dictionary (the JSON dictionary does not help them).
pub(crate) fn insert_binary(item: &mut Item, bytes: &[u8]) {
    let deflated = miniz_oxide::deflate::compress_to_vec(bytes, LEVEL as u8);
    item.insert("body".into(), AttributeValue::B(Blob::new(deflated)));
    item.remove(DICT_ATTR);
}

/// The bytes of an item's `body`, in any stored form; `what` names the item in errors.
pub(crate) fn bytes(item: &Item, what: &str) -> PortResult<Vec<u8>> {
    match item.get("body") {
        Some(AttributeValue::S(text)) => Ok(text.clone().into_bytes()),
        Some(AttributeValue::B(deflated)) => {
            let dict = match item.get(DICT_ATTR) {
                None => &[][..],
                Some(AttributeValue::N(id)) => {
                    id.parse().ok().and_then(dictionary).ok_or_else(|| {
                        PortError::Invalid(format!("{what}: body names dictionary {id}, unknown"))
                    })?
                }
                Some(_) => {
                    return Err(PortError::Invalid(format!(
                        "{what}: {DICT_ATTR} is not a number"
                    )))
                }
            };
            inflate_after(dict, deflated.as_ref()).map_err(|status| {
                PortError::Invalid(format!(
                    "{what}: body does not inflate ({status}; at most {MAX_BODY_BYTES} bytes)"
                ))
            })
        }
        Some(_) => Err(PortError::Invalid(format!(
            "{what}: body is neither a string nor binary"
        ))),
        None => Err(PortError::Invalid(format!("{what}: item without a body"))),
    }
}

/// Raw DEFLATE of `data` as it continues a stream that began with `dict`: the dictionary
/// is fed and flushed to a byte boundary (a sync flush keeps the window), its output
/// dropped, so `data`'s output may refer back into it. An empty `dict` is plain DEFLATE.
fn deflate_after(dict: &[u8], data: &[u8]) -> Vec<u8> {
    let flags = create_comp_flags_from_zip_params(LEVEL, 0, 0);
    let mut compressor = CompressorOxide::new(flags);
    if !dict.is_empty() {
        let (status, _) = compress_to_output(&mut compressor, dict, TDEFLFlush::Sync, |_| true);
        debug_assert_eq!(status, TDEFLStatus::Okay);
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 16);
    let (status, _) = compress_to_output(&mut compressor, data, TDEFLFlush::Finish, |chunk| {
        out.extend_from_slice(chunk);
        true
    });
    debug_assert_eq!(status, TDEFLStatus::Done);
    out
}

/// The inverse of [`deflate_after`]: `dict` enters the window as a stored (uncompressed),
/// non-final block, which ends on a byte boundary as the sync flush did, and `deflated`
/// continues the stream; the dictionary's bytes are dropped from the output.
fn inflate_after(dict: &[u8], deflated: &[u8]) -> Result<Vec<u8>, String> {
    let mut stream = Vec::with_capacity(5 + dict.len() + deflated.len());
    if !dict.is_empty() {
        let len = u16::try_from(dict.len()).map_err(|_| "dictionary too large".to_string())?;
        // BFINAL 0 and BTYPE 00 (stored) in the first three bits, padded to the byte; then
        // LEN and its one's complement, little-endian.
        stream.push(0);
        stream.extend_from_slice(&len.to_le_bytes());
        stream.extend_from_slice(&(!len).to_le_bytes());
        stream.extend_from_slice(dict);
    }
    stream.extend_from_slice(deflated);
    let mut out =
        miniz_oxide::inflate::decompress_to_vec_with_limit(&stream, MAX_BODY_BYTES + dict.len())
            .map_err(|e| format!("{:?}", e.status))?;
    if !out.starts_with(dict) {
        return Err("the dictionary did not come out first".into());
    }
    out.drain(..dict.len());
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn stored(json: &str) -> Item {
        let mut item = Item::new();
        insert(&mut item, json.to_string());
        item
    }

    fn stored_len(item: &Item) -> usize {
        match item.get("body") {
            Some(AttributeValue::B(b)) => b.as_ref().len(),
            Some(AttributeValue::S(s)) => s.len(),
            other => panic!("body {other:?}"),
        }
    }

    /// What the dictionary was made from deflates to a fraction of what plain DEFLATE
    /// makes of it, and comes back whole.
    #[test]
    fn the_dictionary_shrinks_what_it_was_made_from_and_reads_back() {
        let dict = std::str::from_utf8(dictionary(CURRENT).unwrap()).unwrap();
        let run = dict.lines().last().unwrap();
        let item = stored(run);
        assert_eq!(item.get(DICT_ATTR), Some(&AttributeValue::N("1".into())));
        let plain = miniz_oxide::deflate::compress_to_vec(run.as_bytes(), LEVEL as u8).len();
        assert!(
            stored_len(&item) * 4 < plain,
            "{} bytes with the dictionary, {plain} without",
            stored_len(&item)
        );
        assert_eq!(bytes(&item, "run").unwrap(), run.as_bytes());
    }

    /// JSON the dictionary has never seen still round-trips, whatever its content.
    #[test]
    fn any_json_round_trips() {
        let odd: String = (0..5000u32)
            .map(|i| char::from_u32(0x20 + (i * 7919) % 0x5e).unwrap())
            .collect();
        for json in [
            "{}".to_string(),
            format!("{{\"x\":{}}}", serde_json::to_string(&odd).unwrap()),
            "{\"a\":1}".repeat(4000),
        ] {
            let item = stored(&json);
            assert_eq!(bytes(&item, "x").unwrap(), json.as_bytes());
        }
        assert_eq!(
            stored("{}").get("body"),
            Some(&AttributeValue::S("{}".into()))
        );
        assert_eq!(stored("{}").get(DICT_ATTR), None);
    }

    #[test]
    fn bodies_written_before_the_dictionary_are_still_read() {
        let json = "{\"state\":\"CI_RUNNING\",\"events\":3}".repeat(20);
        let mut item = Item::new();
        item.insert("body".into(), AttributeValue::S(json.clone()));
        assert_eq!(bytes(&item, "run").unwrap(), json.as_bytes());
        insert_binary(&mut item, json.as_bytes());
        assert_eq!(item.get(DICT_ATTR), None);
        assert_eq!(bytes(&item, "run").unwrap(), json.as_bytes());
    }

    #[test]
    fn a_wrong_dictionary_or_corrupt_body_is_invalid_not_a_panic() {
        let json = "{\"state\":\"CI_RUNNING\",\"events\":3}".repeat(20);
        let mut item = stored(&json);
        item.insert(DICT_ATTR.into(), AttributeValue::N("7".into()));
        let e = bytes(&item, "run r1").unwrap_err().to_string();
        assert!(e.contains("run r1") && e.contains("dictionary 7"), "{e}");
        item.insert(DICT_ATTR.into(), AttributeValue::S("1".into()));
        assert!(bytes(&item, "run").is_err());
        item.remove(DICT_ATTR);
        // Dictionary-compressed bytes read as plain DEFLATE: refused or different, never
        // the JSON.
        assert_ne!(bytes(&item, "run").ok(), Some(json.clone().into_bytes()));
        item.insert("body".into(), AttributeValue::B(Blob::new(vec![0xff; 64])));
        let e = bytes(&item, "run").unwrap_err().to_string();
        assert!(e.contains("does not inflate"), "{e}");
        let bomb = miniz_oxide::deflate::compress_to_vec(&vec![b' '; MAX_BODY_BYTES + 1], 6);
        item.insert("body".into(), AttributeValue::B(Blob::new(bomb)));
        let e = bytes(&item, "run").unwrap_err().to_string();
        assert!(e.contains("at most"), "{e}");
        item.insert("body".into(), AttributeValue::N("3".into()));
        assert!(bytes(&item, "run").is_err());
        item.remove("body");
        assert!(bytes(&item, "run").is_err());
    }

    /// Items name their dictionary by id, so a released dictionary's bytes are fixed: to
    /// change it, add another id (and keep this one to read what it wrote).
    #[test]
    fn dictionary_1_never_changes() {
        use sha2::{Digest, Sha256};
        assert_eq!(
            hex::encode(Sha256::digest(dictionary(1).unwrap())),
            "e8ed1c0af872e8529ce79167046391b16683c1f5bf2d2c6f08027dc1a7a119a0"
        );
    }
}
