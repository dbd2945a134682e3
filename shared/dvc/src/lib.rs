//! DVC's own files, read as DVC writes them, for dataset snapshots.
//!
//! * A `.dvc` file (`dvc add`): its `outs` in the old form (`md5:` alone, DVC 1 and 2,
//!   possibly with a stage `md5:` and `wdir:` at the top) and the new one (DVC 3:
//!   `hash: md5` beside `md5:`), with `size`, `nfiles`, directory outs (an md5 ending in
//!   `.dir`) and the optional `meta:` mapping, whose `rows` vaia reads.
//! * A `dvc.lock` of schema 2.0: each stage's `cmd`, `deps` and `outs`, in file order.
//!
//! Fields DVC adds that vaia does not use (`cache`, `persist`, `params`, `desc`, `etag`,
//! ...) are tolerated. Malformed YAML and wrong values are a [`DvcError`] naming the file,
//! the field (`outs[0].md5`) and, where it can be found, the line.

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value as Yaml;

/// A `.dvc` or `dvc.lock` that vaia cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DvcError {
    /// The file (or blob key) being read.
    pub origin: String,
    /// 1-based line of the offending text, when known.
    pub line: Option<usize>,
    /// The field, as a path into the document: `outs[0].md5`, `stages.train.outs[1].size`;
    /// `$` for the document itself.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for DvcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "{}:{line}: {}: {}",
                self.origin, self.field, self.message
            ),
            None => write!(f, "{}: {}: {}", self.origin, self.field, self.message),
        }
    }
}

/// How DVC computed an out's md5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashKind {
    /// DVC 3 (`hash: md5`): the md5 of the bytes as they are.
    Md5,
    /// No `hash:` field (DVC 1 and 2): DVC's legacy md5, which normalises CRLF line endings
    /// of text files first (`md5-dos2unix`).
    Md5Dos2unix,
}

/// One tracked output (or a dependency in `dvc.lock`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Out {
    /// As written: relative to the `.dvc` file's directory (and `wdir`), or to the
    /// repository root in `dvc.lock`.
    pub path: String,
    /// As DVC wrote it, `.dir` suffix included for a directory. `None` only in `dvc.lock`
    /// entries that DVC tracks by another checksum (an `etag` of cloud storage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    pub hash: HashKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nfiles: Option<u64>,
    /// A directory out (its md5 names a `.dir` listing of its files).
    pub is_dir: bool,
}

/// A `.dvc` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DvcFile {
    pub outs: Vec<Out>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wdir: Option<String>,
    /// `meta.rows` (at the top, or on the single out): the dataset's row count when the
    /// data pipeline declared it. `None` is unknown, never zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The top-level `meta:` mapping, as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
}

/// A `dvc.lock` (schema 2.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DvcLock {
    pub schema: String,
    /// In the file's order.
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    /// The command, or commands joined with ` && ` when DVC wrote a list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    pub deps: Vec<Out>,
    pub outs: Vec<Out>,
}

/// Either of DVC's files, told apart by name (`dvc.lock`) or content (`schema:` +
/// `stages:`).
#[derive(Debug, Clone, PartialEq)]
pub enum DvcDocument {
    Dvc(DvcFile),
    Lock(DvcLock),
}

/// The one lock-file schema vaia reads.
pub const LOCK_SCHEMA: &str = "2.0";

/// Largest `.dvc` or `dvc.lock` file read: a pointer file is a few hundred bytes, a lock
/// file of a large pipeline some hundred kilobytes.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Deserialize)]
struct RawOut {
    path: Option<Yaml>,
    md5: Option<Yaml>,
    hash: Option<Yaml>,
    size: Option<Yaml>,
    nfiles: Option<Yaml>,
}

#[derive(Deserialize)]
struct RawDvc {
    outs: Option<Yaml>,
    wdir: Option<Yaml>,
    meta: Option<Yaml>,
}

#[derive(Deserialize)]
struct RawLock {
    schema: Option<Yaml>,
    stages: Option<Yaml>,
}

struct Ctx<'a> {
    origin: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn fail(&self, field: impl Into<String>, message: impl Into<String>) -> DvcError {
        DvcError {
            origin: self.origin.to_string(),
            line: None,
            field: field.into(),
            message: message.into(),
        }
    }

    /// An error about a field whose value (or key) appears in the text: the first line
    /// holding `key:` with that value, best effort.
    fn fail_at(
        &self,
        field: impl Into<String>,
        key: &str,
        value: Option<&Yaml>,
        message: impl Into<String>,
    ) -> DvcError {
        let shown = value.and_then(scalar_text);
        let line = self.text.lines().position(|l| {
            let l = l.trim_start().trim_start_matches("- ");
            l.starts_with(&format!("{key}:")) && shown.as_deref().is_none_or(|v| l.contains(v))
        });
        DvcError {
            line: line.map(|i| i + 1),
            ..self.fail(field, message)
        }
    }

    fn yaml(&self, e: &serde_yaml_ng::Error) -> DvcError {
        DvcError {
            origin: self.origin.to_string(),
            line: e.location().map(|l| l.line()),
            field: "$".into(),
            message: format!("not valid YAML for this file: {e}"),
        }
    }
}

fn scalar_text(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn describe(v: &Yaml) -> &'static str {
    match v {
        Yaml::Null => "null",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(_) => "a tagged value",
    }
}

fn is_md5(text: &str) -> bool {
    let digest = text.strip_suffix(".dir").unwrap_or(text);
    digest.len() == 32
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn count(ctx: &Ctx, at: &str, key: &str, v: Option<&Yaml>) -> Result<Option<u64>, DvcError> {
    match v {
        None | Some(Yaml::Null) => Ok(None),
        Some(Yaml::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(other) => Err(ctx.fail_at(
            format!("{at}.{key}"),
            key,
            Some(other),
            format!(
                "expected a whole number ≥ 0, found {}",
                scalar_text(other).unwrap_or_else(|| describe(other).into())
            ),
        )),
    }
}

fn out(ctx: &Ctx, at: &str, raw: &Yaml, need_md5: bool) -> Result<Out, DvcError> {
    if !matches!(raw, Yaml::Mapping(_)) {
        return Err(ctx.fail(at, format!("expected a mapping, found {}", describe(raw))));
    }
    let r: RawOut = serde_yaml_ng::from_value(raw.clone())
        .map_err(|e| ctx.fail(at, format!("cannot read this entry: {e}")))?;
    let path = match &r.path {
        Some(Yaml::String(p)) if !p.trim().is_empty() => p.clone(),
        Some(other) => {
            return Err(ctx.fail_at(
                format!("{at}.path"),
                "path",
                Some(other),
                format!("expected a non-empty path, found {}", describe(other)),
            ))
        }
        None => return Err(ctx.fail(format!("{at}.path"), "missing")),
    };
    let md5 = match &r.md5 {
        Some(Yaml::String(m)) if is_md5(m) => Some(m.clone()),
        Some(other) => {
            return Err(ctx.fail_at(
                format!("{at}.md5"),
                "md5",
                Some(other),
                format!(
                    "expected 32 lowercase hex digits (with `.dir` for a directory), found {:?}",
                    scalar_text(other).unwrap_or_else(|| describe(other).into())
                ),
            ))
        }
        None if need_md5 => {
            return Err(ctx.fail(
                format!("{at}.md5"),
                format!("missing for {path:?}: vaia identifies a snapshot by DVC's md5 (outs tracked by a cloud etag are not snapshots)"),
            ))
        }
        None => None,
    };
    let hash = match &r.hash {
        None | Some(Yaml::Null) => HashKind::Md5Dos2unix,
        Some(Yaml::String(h)) if h == "md5" => HashKind::Md5,
        Some(Yaml::String(h)) if h == "md5-dos2unix" => HashKind::Md5Dos2unix,
        Some(other) => {
            return Err(ctx.fail_at(
                format!("{at}.hash"),
                "hash",
                Some(other),
                format!(
                    "unsupported hash {:?} (DVC writes md5)",
                    scalar_text(other).unwrap_or_else(|| describe(other).into())
                ),
            ))
        }
    };
    let size = count(ctx, at, "size", r.size.as_ref())?;
    let nfiles = count(ctx, at, "nfiles", r.nfiles.as_ref())?;
    let is_dir = md5.as_deref().is_some_and(|m| m.ends_with(".dir"));
    Ok(Out {
        path,
        md5,
        hash,
        size,
        nfiles,
        is_dir,
    })
}

fn rows_of(ctx: &Ctx, at: &str, meta: Option<&Yaml>) -> Result<Option<u64>, DvcError> {
    match meta {
        None | Some(Yaml::Null) => Ok(None),
        Some(Yaml::Mapping(m)) => count(ctx, at, "rows", m.get("rows")),
        Some(other) => Err(ctx.fail_at(
            at,
            "meta",
            None,
            format!("expected a mapping, found {}", describe(other)),
        )),
    }
}

fn outs(ctx: &Ctx, at: &str, v: Option<&Yaml>, need_md5: bool) -> Result<Vec<Out>, DvcError> {
    match v {
        None | Some(Yaml::Null) => Ok(Vec::new()),
        Some(Yaml::Sequence(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| out(ctx, &format!("{at}[{i}]"), item, need_md5))
            .collect(),
        Some(other) => Err(ctx.fail_at(
            at,
            at.rsplit('.').next().unwrap_or(at),
            None,
            format!("expected a list, found {}", describe(other)),
        )),
    }
}

impl DvcFile {
    /// Parses a `.dvc` file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, DvcError> {
        let ctx = Ctx { origin, text };
        let doc: Yaml = serde_yaml_ng::from_str(text).map_err(|e| ctx.yaml(&e))?;
        if !matches!(doc, Yaml::Mapping(_)) {
            return Err(ctx.fail(
                "$",
                format!("expected a mapping with `outs:`, found {}", describe(&doc)),
            ));
        }
        let raw: RawDvc = serde_yaml_ng::from_value(doc).map_err(|e| ctx.yaml(&e))?;
        let outs = outs(&ctx, "outs", raw.outs.as_ref(), true)?;
        if outs.is_empty() {
            return Err(ctx.fail(
                "outs",
                "missing or empty: a .dvc file tracks at least one out",
            ));
        }
        let wdir = match &raw.wdir {
            None | Some(Yaml::Null) => None,
            Some(Yaml::String(w)) => Some(w.clone()),
            Some(other) => {
                return Err(ctx.fail_at(
                    "wdir",
                    "wdir",
                    Some(other),
                    format!("expected a path, found {}", describe(other)),
                ))
            }
        };
        let mut rows = rows_of(&ctx, "meta", raw.meta.as_ref())?;
        if rows.is_none() {
            if let Some(Yaml::Sequence(items)) = &raw.outs {
                if let [Yaml::Mapping(only)] = items.as_slice() {
                    rows = rows_of(&ctx, "outs[0].meta", only.get("meta"))?;
                }
            }
        }
        let meta = match &raw.meta {
            None | Some(Yaml::Null) => None,
            Some(m) => Some(serde_json::to_value(m).map_err(|e| {
                ctx.fail_at("meta", "meta", None, format!("cannot be read as JSON: {e}"))
            })?),
        };
        Ok(Self {
            outs,
            wdir,
            rows,
            meta,
        })
    }

    /// The single out of a `dvc add` file: what a dataset snapshot records.
    pub fn single_out(&self, origin: &str) -> Result<&Out, DvcError> {
        match self.outs.as_slice() {
            [only] => Ok(only),
            many => Err(DvcError {
                origin: origin.to_string(),
                line: None,
                field: "outs".into(),
                message: format!(
                    "{} outs: a dataset snapshot is one out (split it with one `dvc add` per dataset)",
                    many.len()
                ),
            }),
        }
    }
}

impl DvcLock {
    /// Parses a `dvc.lock`; `origin` names it in errors. Only schema 2.0 is read.
    pub fn parse(text: &str, origin: &str) -> Result<Self, DvcError> {
        let ctx = Ctx { origin, text };
        let doc: Yaml = serde_yaml_ng::from_str(text).map_err(|e| ctx.yaml(&e))?;
        if !matches!(doc, Yaml::Mapping(_)) {
            return Err(ctx.fail(
                "$",
                format!(
                    "expected a mapping with `schema:` and `stages:`, found {}",
                    describe(&doc)
                ),
            ));
        }
        let raw: RawLock = serde_yaml_ng::from_value(doc).map_err(|e| ctx.yaml(&e))?;
        match &raw.schema {
            Some(Yaml::String(s)) if s == LOCK_SCHEMA => {}
            None => {
                return Err(ctx.fail(
                    "schema",
                    "missing: this is a dvc.lock of schema 1 (DVC 1.x); vaia reads schema 2.0 (run `dvc repro` with DVC 2 or later)",
                ))
            }
            Some(other) => {
                return Err(ctx.fail_at(
                    "schema",
                    "schema",
                    None,
                    format!(
                        "unsupported schema {} (vaia reads {LOCK_SCHEMA:?})",
                        scalar_text(other).unwrap_or_else(|| describe(other).into())
                    ),
                ))
            }
        }
        let stages = match &raw.stages {
            None | Some(Yaml::Null) => Vec::new(),
            Some(Yaml::Mapping(m)) => {
                let mut stages = Vec::with_capacity(m.len());
                for (name, body) in m {
                    let Some(name) = scalar_text(name) else {
                        return Err(ctx.fail("stages", "a stage name must be a string"));
                    };
                    let at = format!("stages.{name}");
                    let Yaml::Mapping(body) = body else {
                        return Err(ctx.fail_at(
                            &at,
                            &name,
                            None,
                            format!("expected a mapping, found {}", describe(body)),
                        ));
                    };
                    let cmd = match body.get("cmd") {
                        None | Some(Yaml::Null) => None,
                        Some(Yaml::String(c)) => Some(c.clone()),
                        Some(Yaml::Sequence(cs)) => Some(
                            cs.iter()
                                .map(|c| {
                                    scalar_text(c).ok_or_else(|| {
                                        ctx.fail(
                                            format!("{at}.cmd"),
                                            "every command of the list must be a string",
                                        )
                                    })
                                })
                                .collect::<Result<Vec<_>, _>>()?
                                .join(" && "),
                        ),
                        Some(other) => {
                            return Err(ctx.fail(
                                format!("{at}.cmd"),
                                format!("expected a string or a list, found {}", describe(other)),
                            ))
                        }
                    };
                    stages.push(Stage {
                        deps: outs(&ctx, &format!("{at}.deps"), body.get("deps"), false)?,
                        outs: outs(&ctx, &format!("{at}.outs"), body.get("outs"), false)?,
                        name,
                        cmd,
                    });
                }
                stages
            }
            Some(other) => {
                return Err(ctx.fail_at(
                    "stages",
                    "stages",
                    None,
                    format!("expected a mapping of stages, found {}", describe(other)),
                ))
            }
        };
        Ok(Self {
            schema: LOCK_SCHEMA.into(),
            stages,
        })
    }
}

/// Reads `name` as a `dvc.lock` when its file name is `dvc.lock` (or the text has
/// `schema:` and `stages:` at the top), else as a `.dvc` file.
pub fn parse_document(text: &str, origin: &str) -> Result<DvcDocument, DvcError> {
    let file_name = origin.rsplit(['/', '\\']).next().unwrap_or(origin);
    let looks_like_lock = file_name == "dvc.lock"
        || (text.lines().any(|l| l.starts_with("schema:"))
            && text.lines().any(|l| l.starts_with("stages:")));
    if looks_like_lock {
        DvcLock::parse(text, origin).map(DvcDocument::Lock)
    } else {
        DvcFile::parse(text, origin).map(DvcDocument::Dvc)
    }
}

#[cfg(test)]
mod tests;
