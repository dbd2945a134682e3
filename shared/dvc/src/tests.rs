//! The parser against DVC's files from public repositories (see
//! `tests/fixtures/SOURCES.md`) and against broken ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        (include_str!(concat!("../tests/fixtures/", $name)), $name)
    };
}

fn dvc(f: (&str, &str)) -> DvcFile {
    DvcFile::parse(f.0, f.1).unwrap()
}

#[test]
fn oldest_form_with_stage_md5_and_wdir() {
    let f = dvc(fixture!("get-started-data.xml.dvc"));
    assert_eq!(f.wdir.as_deref(), Some("."));
    let o = &f.outs[0];
    assert_eq!(o.path, "data.xml");
    assert_eq!(o.md5.as_deref(), Some("a304afb96060aad90176268345e10355"));
    assert_eq!(o.hash, HashKind::Md5Dos2unix);
    assert_eq!((o.size, o.nfiles, o.is_dir), (None, None, false));
    assert_eq!(f.rows, None);
}

#[test]
fn old_form_file_and_directory_outs() {
    let f = dvc(fixture!("registry-get-started-data.xml.dvc"));
    assert_eq!(f.outs[0].size, Some(37_891_850));
    assert_eq!(f.wdir.as_deref(), Some(".."));
    let d = dvc(fixture!("registry-cats-dogs.dvc"));
    let o = d.single_out("x").unwrap();
    assert!(o.is_dir);
    assert_eq!(
        o.md5.as_deref(),
        Some("22e3f61e52c0ba45334d973244efc155.dir")
    );
    assert_eq!((o.size, o.nfiles), (Some(64_128_504), Some(2800)));
    assert_eq!(o.hash, HashKind::Md5Dos2unix);
}

#[test]
fn new_form_has_hash_md5() {
    let f = dvc(fixture!("experiments-plots-images.dvc"));
    let o = &f.outs[0];
    assert_eq!(o.hash, HashKind::Md5);
    assert!(o.is_dir);
    assert_eq!((o.size, o.nfiles), (Some(1_257_583), Some(10)));
    let old = dvc(fixture!("experiments-pool_data.dvc"));
    assert_eq!(old.outs[0].hash, HashKind::Md5Dos2unix);
    assert_eq!(old.outs[0].nfiles, Some(183));
}

#[test]
fn meta_rows_are_read_and_the_rest_kept() {
    let f = dvc(fixture!("with-meta.dvc"));
    assert_eq!(f.rows, Some(120_000));
    assert_eq!(f.meta.as_ref().unwrap()["owner"], "data-team");
    // On the single out when the top has none.
    let g = DvcFile::parse(
        "outs:\n- md5: 14d187e749ee5614e105741c719fa185\n  path: t.csv\n  meta:\n    rows: 7\n",
        "t.csv.dvc",
    )
    .unwrap();
    assert_eq!(g.rows, Some(7));
}

#[test]
fn lock_files_of_both_dvc_generations() {
    let (text, name) = fixture!("get-started.dvc.lock");
    let l = DvcLock::parse(text, name).unwrap();
    let names: Vec<&str> = l.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["prepare", "featurize", "train", "evaluate"]);
    let prepare = &l.stages[0];
    assert_eq!(
        prepare.cmd.as_deref(),
        Some("python src/prepare.py data/data.xml")
    );
    assert_eq!(prepare.deps.len(), 2);
    assert!(prepare.outs[0].is_dir);
    assert_eq!(prepare.outs[0].nfiles, Some(2));
    assert_eq!(l.stages[3].outs.len(), 3);

    let (text, name) = fixture!("experiments.dvc.lock");
    let l = DvcLock::parse(text, name).unwrap();
    assert_eq!(l.stages.len(), 3);
    let split = &l.stages[0];
    assert_eq!(split.name, "data_split");
    assert_eq!(split.outs[1].path, "data/train_data");
    assert_eq!(split.outs[1].hash, HashKind::Md5);
    assert_eq!(split.outs[1].nfiles, Some(148));
    assert!(l.stages[2].outs.is_empty());
}

#[test]
fn documents_are_told_apart() {
    let (text, _) = fixture!("experiments.dvc.lock");
    assert!(matches!(
        parse_document(text, "repo/dvc.lock").unwrap(),
        DvcDocument::Lock(_)
    ));
    assert!(matches!(
        parse_document(text, "elsewhere.yaml").unwrap(),
        DvcDocument::Lock(_)
    ));
    let (text, _) = fixture!("registry-cats-dogs.dvc");
    assert!(matches!(
        parse_document(text, "cats-dogs.dvc").unwrap(),
        DvcDocument::Dvc(_)
    ));
}

#[test]
fn parsed_fixtures_snapshot() {
    let f = dvc(fixture!("with-meta.dvc"));
    insta::assert_json_snapshot!("with_meta", f);
    let (text, name) = fixture!("experiments.dvc.lock");
    insta::assert_json_snapshot!("experiments_lock", DvcLock::parse(text, name).unwrap());
}

#[test]
fn bad_files_name_the_file_field_and_line() {
    let cases: &[(&str, &str, Option<usize>, &str)] = &[
        ("outs:\n- md5: [1\n", "$", Some(3), "not valid YAML"),
        (
            "outs:\n  - path: a\n   md5: x\n",
            "$",
            Some(3),
            "not valid YAML",
        ),
        ("- just\n- a list\n", "$", None, "expected a mapping"),
        ("wdir: .\n", "outs", None, "missing or empty"),
        ("outs: data\n", "outs", Some(1), "expected a list"),
        (
            "outs:\n- path: d\n  md5: nothex\n",
            "outs[0].md5",
            Some(3),
            "32 lowercase hex",
        ),
        ("outs:\n- path: d\n", "outs[0].md5", None, "missing"),
        (
            "outs:\n- md5: 14d187e749ee5614e105741c719fa185\n",
            "outs[0].path",
            None,
            "missing",
        ),
        (
            "outs:\n- md5: 14d187e749ee5614e105741c719fa185\n  path: d\n  size: -4\n",
            "outs[0].size",
            Some(4),
            "whole number",
        ),
        (
            "outs:\n- md5: 14d187e749ee5614e105741c719fa185\n  path: d\n  nfiles: many\n",
            "outs[0].nfiles",
            Some(4),
            "whole number",
        ),
        (
            "outs:\n- md5: 14d187e749ee5614e105741c719fa185\n  path: d\n  hash: sha256\n",
            "outs[0].hash",
            Some(4),
            "unsupported hash",
        ),
        (
            "outs:\n- md5: 14d187e749ee5614e105741c719fa185\n  path: d\nmeta:\n  rows: 1.5\n",
            "meta.rows",
            Some(5),
            "whole number",
        ),
        (
            "outs:\n- md5: 14d187e749ee5614e105741c719fa185\n  path: d\nmeta: lots\n",
            "meta",
            Some(4),
            "expected a mapping",
        ),
    ];
    for (text, field, line, needle) in cases {
        let e = DvcFile::parse(text, "data/train.dvc").unwrap_err();
        assert_eq!(&e.field, field, "{text:?}: {e}");
        assert_eq!(&e.line, line, "{text:?}: {e}");
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
        assert!(e.to_string().starts_with("data/train.dvc"), "{e}");
    }
}

#[test]
fn bad_lock_files_are_refused() {
    let cases: &[(&str, &str, &str)] = &[
        ("stages:\n  a:\n    cmd: x\n", "schema", "schema 1"),
        ("schema: '3.0'\nstages: {}\n", "schema", "unsupported schema 3.0"),
        ("schema: '2.0'\nstages: [a]\n", "stages", "mapping of stages"),
        ("schema: '2.0'\nstages:\n  a: 3\n", "stages.a", "expected a mapping"),
        (
            "schema: '2.0'\nstages:\n  a:\n    outs:\n    - path: m\n      md5: zz\n",
            "stages.a.outs[0].md5",
            "hex",
        ),
        (
            "schema: '2.0'\nstages:\n  a:\n    deps:\n    - md5: 14d187e749ee5614e105741c719fa185\n",
            "stages.a.deps[0].path",
            "missing",
        ),
        ("schema: '2.0'\nstages:\n  a:\n    cmd: {x: 1}\n", "stages.a.cmd", "string or a list"),
    ];
    for (text, field, needle) in cases {
        let e = DvcLock::parse(text, "dvc.lock").unwrap_err();
        assert_eq!(&e.field, field, "{text:?}: {e}");
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
    }
    // Unknown fields (DVC adds them) are tolerated; a cloud dep without md5 is fine.
    let ok = DvcLock::parse(
        "schema: '2.0'\nstages:\n  a:\n    cmd: [one, two]\n    frozen: true\n    deps:\n    - path: s3://b/k\n      etag: abc\n",
        "dvc.lock",
    )
    .unwrap();
    assert_eq!(ok.stages[0].cmd.as_deref(), Some("one && two"));
    assert_eq!(ok.stages[0].deps[0].md5, None);
}

#[test]
fn a_multi_out_file_is_not_one_snapshot() {
    let f = DvcFile::parse(
        "outs:\n- md5: 14d187e749ee5614e105741c719fa185\n  path: a\n- md5: 14d187e749ee5614e105741c719fa186\n  path: b\n",
        "two.dvc",
    )
    .unwrap();
    assert_eq!(f.outs.len(), 2);
    assert!(f
        .single_out("two.dvc")
        .unwrap_err()
        .to_string()
        .contains("2 outs"));
}
