//! The runs-list cursor (`vaia_core::ports::RunCursor::parse`), which the API reads from a
//! query string: a cursor that parses prints as one that parses to the same cursor.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vaia_core::ports::RunCursor;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = RunCursor::parse(text) {
        let printed = c.to_string();
        let back = RunCursor::parse(&printed)
            .unwrap_or_else(|e| panic!("{printed:?} printed from {text:?}: {e}"));
        assert_eq!(c, back);
    }
});
