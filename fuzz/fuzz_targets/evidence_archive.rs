//! Evidence bundles as one archive (`vaia_core::evidence::archive::unpack`): an archive
//! that unpacks holds a manifest and flat file names only, and packing what it held
//! (`archive::pack`) gives an archive that unpacks to the same content.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vaia_core::evidence::{archive, MANIFEST_FILE};

fuzz_target!(|data: &[u8]| {
    if let Ok(got) = archive::unpack(data, "fuzz/bundle.tar") {
        for name in got.files.keys() {
            assert!(
                !name.is_empty() && !name.contains('/') && name != ".." && name != MANIFEST_FILE,
                "unpack let through the name {name:?}"
            );
        }
        let files: Vec<(&str, &[u8])> = got
            .files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let packed = archive::pack(&got.manifest, &files)
            .unwrap_or_else(|e| panic!("what unpacked does not pack: {e}"));
        let again = archive::unpack(&packed, "fuzz/again.tar")
            .unwrap_or_else(|e| panic!("a packed archive does not unpack: {e}"));
        assert_eq!(got, again, "archive round trip");
    }
});
