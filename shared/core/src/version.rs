//! Semantic version bumps implied by a candidate's changes.

use semver::Version;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bump {
    Patch,
    Minor,
    Major,
}

impl Bump {
    pub fn as_str(self) -> &'static str {
        match self {
            Bump::Patch => "patch",
            Bump::Minor => "minor",
            Bump::Major => "major",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "patch" => Some(Bump::Patch),
            "minor" => Some(Bump::Minor),
            "major" => Some(Bump::Major),
            _ => None,
        }
    }
}

/// The first version a repository gets when nothing was promoted before.
pub fn initial_version() -> Version {
    Version::new(0, 1, 0)
}

/// The next version after `previous` for `bump`; with no previous version, 0.1.0.
pub fn next_version(previous: Option<&Version>, bump: Bump) -> Version {
    let Some(p) = previous else {
        return initial_version();
    };
    match bump {
        Bump::Major => Version::new(p.major + 1, 0, 0),
        Bump::Minor => Version::new(p.major, p.minor + 1, 0),
        Bump::Patch => Version::new(p.major, p.minor, p.patch + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps() {
        let v = Version::new(1, 4, 2);
        assert_eq!(next_version(Some(&v), Bump::Major), Version::new(2, 0, 0));
        assert_eq!(next_version(Some(&v), Bump::Minor), Version::new(1, 5, 0));
        assert_eq!(next_version(Some(&v), Bump::Patch), Version::new(1, 4, 3));
        assert_eq!(next_version(None, Bump::Major), Version::new(0, 1, 0));
    }
}
