//! The evidence bundle as one object: `evidence/<owner>/<repo>/<sha>/bundle.tar`
//! ([`super::ARCHIVE_FILE`]), a POSIX tar holding `manifest.json` and exactly the files it
//! lists, under flat names. One PUT for the agent's CI and one GET for each reader instead
//! of one per file (S3 bills per request); the per-file form stays valid.
//!
//! [`pack`] writes the archive deterministically (ustar, mtime 0, mode 0644, owner 0, the
//! manifest first, then the files sorted by name). [`unpack`] reads outside data and is
//! strict: regular files only, named `x` or `./x`; a `.` or `./` directory entry is
//! ignored, pax and GNU long-name headers are followed; any other entry (directory, link,
//! device, fifo), a name with `/` or `..`, a name given twice, an entry over its limit
//! (checked from its header before it is read) or a missing manifest is an
//! [`ArchiveError`] naming the entry and where the archive came from. Whether the files
//! are the ones the manifest lists is the caller's check ([`super::ManifestFile::check`]).

use super::{MANIFEST_FILE, MAX_BUNDLE_BYTES, MAX_FILE_BYTES, MAX_MANIFEST_BYTES};
use std::collections::BTreeMap;
use std::io::Read;

/// An archive's content: the manifest's bytes and every other file by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub manifest: Vec<u8>,
    pub files: BTreeMap<String, Vec<u8>>,
}

/// A bad archive: `origin` (the blob key or path it came from), the entry at fault when
/// there is one, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {}{message}", entry.as_ref().map(|e| format!("entry {e:?}: ")).unwrap_or_default())]
pub struct ArchiveError {
    pub origin: String,
    pub entry: Option<String>,
    pub message: String,
}

/// Packs `manifest` and `files` (name, content) into an archive; the same input always
/// gives the same bytes. Refuses a name that [`unpack`] would refuse, a name given twice,
/// and an archive over [`MAX_BUNDLE_BYTES`].
pub fn pack(manifest: &[u8], files: &[(&str, &[u8])]) -> Result<Vec<u8>, ArchiveError> {
    let origin = "the archive being packed";
    let fail = |entry: Option<&str>, message: String| ArchiveError {
        origin: origin.to_string(),
        entry: entry.map(str::to_string),
        message,
    };
    let mut sorted: Vec<(&str, &[u8])> = files.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for pair in sorted.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(fail(Some(pair[0].0), "given twice".into()));
        }
    }
    for (name, _) in &sorted {
        if *name == MANIFEST_FILE {
            return Err(fail(Some(name), "is the manifest's name".into()));
        }
        check_name(name).map_err(|m| fail(Some(name), m))?;
    }
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in std::iter::once((MANIFEST_FILE, manifest)).chain(sorted) {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(bytes.len() as u64);
        builder
            .append_data(&mut header, name, bytes)
            .map_err(|e| fail(Some(name), e.to_string()))?;
    }
    let out = builder
        .into_inner()
        .map_err(|e| fail(None, e.to_string()))?;
    if out.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(fail(
            None,
            format!(
                "the archive would be {} bytes, over the limit of {MAX_BUNDLE_BYTES} bytes per evidence bundle",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// A flat name: not empty, `.` or `..`, no `/` (and no NUL, which tar cannot hold).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(
            "is not a plain file name (archive entries are flat: no directories, no ..)".into(),
        );
    }
    Ok(())
}

/// Reads an archive (see the module's header for what is refused); `origin` names it in
/// errors. The archive is at most [`MAX_BUNDLE_BYTES`] (headers included), so its
/// entries are too, in all; each entry's size is checked from its header against
/// [`MAX_MANIFEST_BYTES`] or [`MAX_FILE_BYTES`] before it is read.
pub fn unpack(bytes: &[u8], origin: &str) -> Result<Unpacked, ArchiveError> {
    let fail = |entry: Option<&str>, message: String| ArchiveError {
        origin: origin.to_string(),
        entry: entry.map(str::to_string),
        message,
    };
    if bytes.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(fail(
            None,
            format!(
                "{} bytes, over the limit of {MAX_BUNDLE_BYTES} bytes per evidence bundle",
                bytes.len()
            ),
        ));
    }
    let not_tar = |e: std::io::Error| fail(None, format!("not a readable tar archive: {e}"));
    let mut archive = tar::Archive::new(bytes);
    let mut manifest = None;
    let mut files = BTreeMap::new();
    for entry in archive.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            // pax global attributes (`git archive` writes a comment): nothing of ours.
            continue;
        }
        let Ok(name) = String::from_utf8(raw) else {
            return Err(fail(Some(&shown), "the name is not UTF-8".into()));
        };
        let flat = name.strip_prefix("./").unwrap_or(&name);
        if kind == tar::EntryType::Directory {
            if flat.is_empty() || flat == "." || flat == "./" {
                continue;
            }
            return Err(fail(
                Some(&name),
                "is a directory: a bundle's files are flat".into(),
            ));
        }
        if kind != tar::EntryType::Regular {
            return Err(fail(
                Some(&name),
                format!("is a {kind:?} entry: only regular files are evidence"),
            ));
        }
        check_name(flat).map_err(|m| fail(Some(&name), m))?;
        let size = entry.size();
        let limit = if flat == MANIFEST_FILE {
            MAX_MANIFEST_BYTES
        } else {
            MAX_FILE_BYTES
        };
        if size > limit {
            return Err(fail(
                Some(&name),
                format!("{size} bytes, over the limit of {limit} bytes"),
            ));
        }
        if flat == MANIFEST_FILE && manifest.is_some() || files.contains_key(flat) {
            return Err(fail(Some(&name), "is in the archive twice".into()));
        }
        // `size` is at most the limit and the reader stops at the end of `bytes`.
        let mut content = Vec::with_capacity(size.min(bytes.len() as u64) as usize);
        entry
            .read_to_end(&mut content)
            .map_err(|e| fail(Some(&name), format!("unreadable: {e}")))?;
        if content.len() as u64 != size {
            return Err(fail(
                Some(&name),
                format!(
                    "truncated: {} of its {size} bytes are in the archive",
                    content.len()
                ),
            ));
        }
        if flat == MANIFEST_FILE {
            manifest = Some(content);
        } else {
            files.insert(flat.to_string(), content);
        }
    }
    let Some(manifest) = manifest else {
        return Err(fail(None, format!("no {MANIFEST_FILE} in the archive")));
    };
    Ok(Unpacked { manifest, files })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn header(name: &[u8], kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(size);
        h.set_cksum();
        h
    }

    /// An archive of raw entries, as another tool might write them.
    fn raw(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            b.append(&header(name, *kind, data.len() as u64), *data)
                .unwrap();
        }
        b.into_inner().unwrap()
    }

    const M: &[u8] = br#"{"schema":"vaia.evidence/v1"}"#;
    const R: tar::EntryType = tar::EntryType::Regular;

    #[test]
    fn packs_deterministically_and_round_trips() {
        let long = "l".repeat(128);
        let files: Vec<(&str, &[u8])> = vec![
            ("tools.json", b"[]"),
            (".trivyignore", b""),
            (&long, b"long name"),
        ];
        let a = pack(M, &files).unwrap();
        let mut reversed = files.clone();
        reversed.reverse();
        assert_eq!(a, pack(M, &reversed).unwrap(), "same bytes in any order");
        let got = unpack(&a, "a.tar").unwrap();
        assert_eq!(got.manifest, M);
        let want: BTreeMap<String, Vec<u8>> = files
            .iter()
            .map(|(n, b)| (n.to_string(), b.to_vec()))
            .collect();
        assert_eq!(got.files, want);
        // The manifest comes first, and every header has mtime 0 and mode 0644.
        let mut ar = tar::Archive::new(&a[..]);
        let mut entries = ar.entries().unwrap();
        let first = entries.next().unwrap().unwrap();
        assert_eq!(&*first.path_bytes(), MANIFEST_FILE.as_bytes());
        assert_eq!(first.header().mtime().unwrap(), 0);
        assert_eq!(first.header().mode().unwrap(), 0o644);
    }

    #[test]
    fn pack_refuses_bad_names() {
        for bad in ["a/b", "..", "", MANIFEST_FILE] {
            let e = pack(M, &[(bad, b"x")]).unwrap_err();
            assert_eq!(e.entry.as_deref(), Some(bad), "{e}");
        }
        let e = pack(M, &[("a", b"x"), ("a", b"y")]).unwrap_err();
        assert!(e.to_string().contains("given twice"), "{e}");
    }

    #[test]
    fn reads_what_tar_cf_writes() {
        // `tar -cf bundle.tar -C dir .` names entries `./x` and adds a `./` directory.
        let a = raw(&[
            (b"./", tar::EntryType::Directory, b""),
            (b"./manifest.json", R, M),
            (b"./tools.json", R, b"[1]"),
        ]);
        let got = unpack(&a, "a.tar").unwrap();
        assert_eq!(got.manifest, M);
        assert_eq!(got.files.keys().collect::<Vec<_>>(), ["tools.json"]);
        // With the real tool, when there is one.
        let dir = tempdir();
        std::fs::write(dir.join(MANIFEST_FILE), M).unwrap();
        std::fs::write(dir.join("tools.json"), b"[2]").unwrap();
        let out = dir.join("out.tar");
        let made = std::process::Command::new("tar")
            .arg("-cf")
            .arg(&out)
            .arg("-C")
            .arg(&dir)
            .args(["./manifest.json", "./tools.json"])
            .status();
        if made.is_ok_and(|s| s.success()) {
            let got = unpack(&std::fs::read(&out).unwrap(), "out.tar").unwrap();
            assert_eq!(got.files["tools.json"], b"[2]");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempdir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "vaia-archive-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn refuses_what_is_not_a_flat_regular_file() {
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (
                raw(&[
                    (b"manifest.json", R, M),
                    (b"sub/", tar::EntryType::Directory, b""),
                ]),
                "sub/",
                "is a directory",
            ),
            (
                raw(&[
                    (b"manifest.json", R, M),
                    (b"link", tar::EntryType::Symlink, b""),
                ]),
                "link",
                "Symlink",
            ),
            (
                raw(&[
                    (b"manifest.json", R, M),
                    (b"hard", tar::EntryType::Link, b""),
                ]),
                "hard",
                "Link",
            ),
            (
                raw(&[
                    (b"manifest.json", R, M),
                    (b"dev", tar::EntryType::Char, b""),
                ]),
                "dev",
                "Char",
            ),
            (
                raw(&[(b"manifest.json", R, M), (b"sub/x", R, b"1")]),
                "sub/x",
                "not a plain file name",
            ),
            (
                raw(&[(b"manifest.json", R, M), (b"../x", R, b"1")]),
                "../x",
                "not a plain file name",
            ),
            (
                raw(&[(b"manifest.json", R, M), (b"..", R, b"1")]),
                "..",
                "not a plain file name",
            ),
            (
                raw(&[(b"manifest.json", R, M), (b"a", R, b"1"), (b"./a", R, b"2")]),
                "./a",
                "twice",
            ),
            (
                raw(&[(b"manifest.json", R, M), (b"./manifest.json", R, M)]),
                "./manifest.json",
                "twice",
            ),
        ];
        for (archive, entry, says) in cases {
            let e = unpack(&archive, "evidence/o/r/s/bundle.tar").unwrap_err();
            assert_eq!(e.entry.as_deref(), Some(entry), "{e}");
            assert!(e.to_string().contains(says), "{e}");
            assert!(
                e.to_string()
                    .starts_with("evidence/o/r/s/bundle.tar: entry "),
                "{e}"
            );
        }
        let e = unpack(&raw(&[(b"tools.json", R, b"[]")]), "b.tar").unwrap_err();
        assert_eq!(e.to_string(), "b.tar: no manifest.json in the archive");
        assert!(unpack(b"not a tar at all", "c.tar").is_err());
    }

    #[test]
    fn sizes_are_checked_from_the_header_before_reading() {
        // Headers claiming more than the limits, with no data behind them: refused for the
        // size, not for the missing data.
        let claim = |name: &[u8], size: u64| {
            let mut a = header(name, R, size).as_bytes().to_vec();
            a.extend_from_slice(&[0; 1024]);
            a
        };
        let e = unpack(&claim(b"manifest.json", MAX_MANIFEST_BYTES + 1), "a").unwrap_err();
        assert!(e.message.contains("over the limit of 1048576"), "{e}");
        let e = unpack(&claim(b"big.bin", MAX_FILE_BYTES + 1), "a").unwrap_err();
        assert_eq!(e.entry.as_deref(), Some("big.bin"));
        assert!(e.message.contains(&MAX_FILE_BYTES.to_string()), "{e}");
        // A small claim with too little data behind it is truncated, not padded.
        let mut short = header(b"manifest.json", R, 100).as_bytes().to_vec();
        short.extend_from_slice(&[b'{'; 10]);
        let e = unpack(&short, "a").unwrap_err();
        assert_eq!(e.entry.as_deref(), Some("manifest.json"), "{e}");
        let e = unpack(&vec![0; MAX_BUNDLE_BYTES as usize + 1], "big").unwrap_err();
        assert!(e.message.contains("per evidence bundle"), "{e}");
    }
}
