//! Enforcers built ahead, when a policy is made ready: a principal's first decision then
//! builds none, and the decisions equal those of enforcers built on first use.

mod common;

use gridhub_catalog::shared_tables;
use gridhub_policy::synthetic::{community_principals, large_policy};
use gridhub_policy::{DEFAULT_MODEL, Known, Policy, Principal, TableInfo};

use common::{now, principals};

/// Configured principals of every role, plus a worker per community of the large policy.
fn everyone(communities: usize) -> Vec<Principal> {
    let mut all = principals();
    all.extend(community_principals(communities));
    all
}

async fn compiled(text: &str, who: &[Principal]) -> Policy {
    Policy::compile(DEFAULT_MODEL, text, who, &Known::shared())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn tables() -> Vec<TableInfo> {
    shared_tables().iter().map(TableInfo::shared).collect()
}

#[tokio::test]
async fn a_first_decision_builds_no_enforcer_once_they_are_built_ahead() {
    let communities = 40;
    let who = everyone(communities);
    let text = large_policy(400, communities);
    let ahead = compiled(&text, &who).await;
    assert_eq!(ahead.enforcer_count(), 0, "nothing is built by compiling");
    let built = ahead.build_enforcers().unwrap();
    assert_eq!(built, ahead.enforcer_count());
    // One per jurisdiction and read action the policy has lines for: at least one per
    // configured jurisdiction.
    let areas: std::collections::BTreeSet<&str> = who.iter().map(|p| p.area.as_str()).collect();
    assert!(
        built >= areas.len(),
        "{built} enforcers for {} areas",
        areas.len()
    );

    let lazy = compiled(&text, &who).await;
    for p in &who {
        for t in tables() {
            let a = ahead.decide(p, None, &[], now(), &t);
            let b = lazy.decide(p, None, &[], now(), &t);
            assert_eq!(
                a, b,
                "{} on {}: built ahead and on first use differ",
                p.id, t.name
            );
        }
    }
    assert_eq!(
        ahead.enforcer_count(),
        built,
        "deciding for every configured principal built an enforcer that was not built ahead"
    );
    assert!(lazy.enforcer_count() > 0, "the lazy policy built its own");
}
