//! DVC files (`vaia_dvc::parse_document`): the first byte picks the file name (`.dvc` or
//! `dvc.lock`), the rest is the text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let origin = if which % 2 == 0 {
        "data/train.dvc"
    } else {
        "dvc.lock"
    };
    let _ = vaia_dvc::parse_document(&vaia_fuzz::text(rest), origin);
});
