//! The OCI adapter against a real registry: Debian's `docker-registry` (the CNCF distribution
//! server) on 127.0.0.1 with a free port, two images pushed into it by `skopeo` from OCI
//! layouts built here (config blob, one gzipped tar layer, manifest, index). Promote the
//! first (tag 0.1.0 and prod), promote the second (0.2.0, prod moves), roll back (prod moves
//! back); an unknown digest is refused, not retried; a registry that is down is retried and
//! reported. Without the two binaries the tests skip, saying so, except under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{push, resolve, tool, Registry};

use std::time::Duration;
use vaia_core::delivery::{promotion_tags, tag_all, ImageRegistry, Retry, TagError};
use vaia_core::{ImageDigest, ImageName, ImageTag};
use vaia_oci::{Credentials, OciRegistry};

const FAST: Retry = Retry {
    attempts: 3,
    backoff: Duration::from_millis(20),
};

#[tokio::test]
async fn tag_retag_and_move_prod_back_against_docker_registry() {
    const TEST: &str = "tag_retag_and_move_prod_back_against_docker_registry";
    let (Some(registry_bin), Some(skopeo)) = (tool(TEST, "docker-registry"), tool(TEST, "skopeo"))
    else {
        return;
    };
    let registry = Registry::start(&registry_bin);
    let host = registry.host.clone();
    let name = "acme/support-agent";
    let image = ImageName::new(format!("{host}/{name}")).unwrap();
    let oci = OciRegistry::new(Credentials::Anonymous, Duration::from_secs(10))
        .unwrap()
        .plain_http(host.clone());
    let prod = ImageTag::new("prod").unwrap();

    let (h, n) = (host.clone(), name.to_string());
    let sk = skopeo.clone();
    let first = tokio::task::spawn_blocking(move || push(&sk, &h, &n, "good agent v1", "sha-1"))
        .await
        .unwrap();
    let (h, n) = (host.clone(), name.to_string());
    let sk = skopeo.clone();
    let second = tokio::task::spawn_blocking(move || push(&sk, &h, &n, "good agent v2", "sha-2"))
        .await
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(resolve(&host, name, "prod").await, None);

    // First promotion: 0.1.0 and prod.
    let v1 = semver::Version::new(0, 1, 0);
    let out = tag_all(
        &oci,
        &image,
        &first,
        &promotion_tags(&v1, &prod).unwrap(),
        FAST,
    )
    .await;
    assert!(
        out.iter().all(|o| o.result.is_ok() && o.attempts == 1),
        "{out:?}"
    );
    assert_eq!(
        resolve(&host, name, "0.1.0").await.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(
        resolve(&host, name, "prod").await.as_deref(),
        Some(first.as_str())
    );

    // Second promotion: 0.2.0, prod moves; 0.1.0 stays.
    let v2 = semver::Version::new(0, 2, 0);
    let out = tag_all(
        &oci,
        &image,
        &second,
        &promotion_tags(&v2, &prod).unwrap(),
        FAST,
    )
    .await;
    assert!(out.iter().all(|o| o.result.is_ok()), "{out:?}");
    assert_eq!(
        resolve(&host, name, "0.2.0").await.as_deref(),
        Some(second.as_str())
    );
    assert_eq!(
        resolve(&host, name, "prod").await.as_deref(),
        Some(second.as_str())
    );
    assert_eq!(
        resolve(&host, name, "0.1.0").await.as_deref(),
        Some(first.as_str())
    );

    // Rollback: prod back to the first.
    let out = tag_all(&oci, &image, &first, std::slice::from_ref(&prod), FAST).await;
    assert!(out[0].result.is_ok(), "{out:?}");
    assert_eq!(
        resolve(&host, name, "prod").await.as_deref(),
        Some(first.as_str())
    );

    // A digest the registry does not hold: refused at once, nothing moved.
    let unknown = ImageDigest::new(format!("sha256:{}", "0".repeat(64))).unwrap();
    let err = oci.tag(&image, &unknown, &prod).await.unwrap_err();
    assert!(
        matches!(&err, TagError::Refused(m) if m.contains("404")),
        "{err}"
    );
    let out = tag_all(&oci, &image, &unknown, std::slice::from_ref(&prod), FAST).await;
    assert_eq!(out[0].attempts, 1);
    assert_eq!(
        resolve(&host, name, "prod").await.as_deref(),
        Some(first.as_str())
    );

    // The registry goes down: retried, then reported; prod unchanged when it comes back.
    drop(registry);
    let out = tag_all(&oci, &image, &second, std::slice::from_ref(&prod), FAST).await;
    assert_eq!(out[0].attempts, 3, "{out:?}");
    assert!(
        matches!(&out[0].result, Err(TagError::Unavailable(m)) if m.contains("cannot connect")),
        "{out:?}"
    );
    assert!(out[0]
        .describe(&image, &second)
        .contains("after 3 attempts"));
}
