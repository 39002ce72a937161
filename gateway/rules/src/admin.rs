//! The decisions of the operator endpoints under `/.edgeauth/admin/rules/`
//! (the component does their I/O): who may call them, which endpoint a
//! request means, and the dry run's statistics.

use serde_json::{Value, json};

use crate::config::{Source, TenantRules};

// One check for every admin endpoint (rules and tenant documents).
pub use edgeauth_core::admin::authorized;

/// The admin endpoint a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint<'a> {
    List {
        tenant: &'a str,
    },
    DryRun {
        tenant: &'a str,
    },
    /// Upload a version and deploy it (the upload path from before versions).
    Put {
        tenant: &'a str,
        rule: &'a str,
    },
    Delete {
        tenant: &'a str,
        rule: &'a str,
    },
    /// Upload a version only.
    Upload {
        tenant: &'a str,
        rule: &'a str,
    },
    Versions {
        tenant: &'a str,
        rule: &'a str,
    },
    Logs {
        tenant: &'a str,
        rule: &'a str,
    },
    Deployment {
        tenant: &'a str,
    },
    Deploy {
        tenant: &'a str,
    },
    Rollback {
        tenant: &'a str,
    },
    Gc {
        tenant: &'a str,
    },
    NotFound,
}

/// `rest` is the path after the admin prefix.
pub fn endpoint<'a>(method: &http::Method, rest: &'a str) -> Endpoint<'a> {
    let segments: Vec<&str> = rest.split('/').collect();
    use http::Method;
    // Tenant-wide actions are `_`-prefixed second segments under GET or
    // POST; a rule's own are PUT/DELETE on its name, or a third segment.
    match segments.as_slice() {
        [tenant] if *method == http::Method::GET => Endpoint::List { tenant },
        [tenant, "_run"] if *method == http::Method::POST => Endpoint::DryRun { tenant },
        [tenant, "_deployment"] if *method == Method::GET => Endpoint::Deployment { tenant },
        [tenant, "_deploy"] if *method == Method::POST => Endpoint::Deploy { tenant },
        [tenant, "_rollback"] if *method == Method::POST => Endpoint::Rollback { tenant },
        [tenant, "_gc"] if *method == Method::POST => Endpoint::Gc { tenant },
        [tenant, rule, "versions"] if *method == Method::POST => Endpoint::Upload { tenant, rule },
        [tenant, rule, "versions"] if *method == Method::GET => Endpoint::Versions { tenant, rule },
        [tenant, rule, "logs"] if *method == Method::GET => Endpoint::Logs { tenant, rule },
        [tenant, rule] if *method == http::Method::PUT => Endpoint::Put { tenant, rule },
        [tenant, rule] if *method == http::Method::DELETE => Endpoint::Delete { tenant, rule },
        _ => Endpoint::NotFound,
    }
}

/// Why an artifact upload is refused before its signature is even checked:
/// it would be stored and never run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRefused {
    /// 404: no such tenant; 409: the tenant has no chain entry that loads
    /// this rule from uploads.
    pub status: u16,
    pub message: String,
}

/// At most this many names are listed in a refusal.
const LISTED: usize = 20;

pub(crate) fn listing<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    let mut out = names
        .iter()
        .take(LISTED)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LISTED {
        out.push_str(&format!(" and {} more", names.len() - LISTED));
    }
    out
}

/// Whether an artifact uploaded for `rule` of `tenant` would ever run:
/// `tenants` are the ids of the tenants the gateway serves, `chain` the
/// tenant's rule chain (`None` when it has none).
pub fn upload_target(
    tenant: &str,
    rule: &str,
    tenants: &[&str],
    chain: Option<&TenantRules>,
) -> Result<(), UploadRefused> {
    tenant_known(tenant, tenants)?;
    let entries = chain.map(|c| c.chain.as_slice()).unwrap_or_default();
    let conflict = |message| {
        Err(UploadRefused {
            status: 409,
            message,
        })
    };
    match entries.iter().find(|r| r.name == rule) {
        Some(r) => match &r.source {
            Source::Kv => Ok(()),
            Source::File(path) => conflict(format!(
                "rule `{rule}` of tenant `{tenant}` is loaded from `file:{path}`, not from uploads"
            )),
        },
        None if entries.is_empty() => conflict(format!(
            "tenant `{tenant}` has no rule chain, so no rule `{rule}` would run; add it to the tenant's `rules` first"
        )),
        None => conflict(format!(
            "rule `{rule}` is in no chain of tenant `{tenant}`; its chain has {}",
            listing(entries.iter().map(|r| r.name.as_str()))
        )),
    }
}

/// 404 naming the tenants there are, for a tenant the gateway does not serve.
pub fn tenant_known(tenant: &str, tenants: &[&str]) -> Result<(), UploadRefused> {
    if !tenants.contains(&tenant) {
        let message = if tenants.is_empty() {
            format!("no tenant `{tenant}`: the gateway has no tenants yet")
        } else {
            format!(
                "no tenant `{tenant}`; the tenants are {}",
                listing(tenants.iter().copied())
            )
        };
        return Err(UploadRefused {
            status: 404,
            message,
        });
    }
    Ok(())
}

/// Min, median, mean and max of timings (`null` without any).
pub fn stats(mut v: Vec<u64>) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_unstable();
    let mean = v.iter().sum::<u64>() / v.len() as u64;
    json!({"min": v[0], "median": v[v.len() / 2], "mean": mean, "max": v[v.len() - 1]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_by_method_and_path() {
        use http::Method;
        assert_eq!(
            endpoint(&Method::GET, "acme"),
            Endpoint::List { tenant: "acme" }
        );
        assert_eq!(
            endpoint(&Method::POST, "acme/_run"),
            Endpoint::DryRun { tenant: "acme" }
        );
        assert_eq!(
            endpoint(&Method::PUT, "acme/r"),
            Endpoint::Put {
                tenant: "acme",
                rule: "r"
            }
        );
        assert_eq!(
            endpoint(&Method::DELETE, "acme/r"),
            Endpoint::Delete {
                tenant: "acme",
                rule: "r"
            }
        );
        assert_eq!(endpoint(&Method::GET, "acme/r"), Endpoint::NotFound);
        assert_eq!(
            endpoint(&Method::POST, "acme/r/versions"),
            Endpoint::Upload {
                tenant: "acme",
                rule: "r"
            }
        );
        assert_eq!(
            endpoint(&Method::GET, "acme/r/versions"),
            Endpoint::Versions {
                tenant: "acme",
                rule: "r"
            }
        );
        assert_eq!(
            endpoint(&Method::GET, "acme/r/logs"),
            Endpoint::Logs {
                tenant: "acme",
                rule: "r"
            }
        );
        assert_eq!(
            endpoint(&Method::GET, "acme/_deployment"),
            Endpoint::Deployment { tenant: "acme" }
        );
        assert_eq!(
            endpoint(&Method::POST, "acme/_deploy"),
            Endpoint::Deploy { tenant: "acme" }
        );
        assert_eq!(
            endpoint(&Method::POST, "acme/_rollback"),
            Endpoint::Rollback { tenant: "acme" }
        );
        assert_eq!(
            endpoint(&Method::POST, "acme/_gc"),
            Endpoint::Gc { tenant: "acme" }
        );
        // A version cannot be written by name: no PUT under versions.
        assert_eq!(
            endpoint(&Method::PUT, "acme/r/versions"),
            Endpoint::NotFound
        );
        assert_eq!(
            endpoint(&Method::PUT, "acme/r/versions/0123456789abcdef"),
            Endpoint::NotFound
        );
        assert_eq!(endpoint(&Method::GET, "acme/_deploy"), Endpoint::NotFound);
        assert_eq!(endpoint(&Method::PUT, "a/b/c"), Endpoint::NotFound);
    }

    fn chain(json: &str) -> TenantRules {
        let config = crate::config::parse(json, |_| false).unwrap();
        config.tenants.get("acme").unwrap().clone()
    }

    #[test]
    fn uploads_for_an_unknown_tenant_are_refused_naming_the_tenants() {
        let c = chain(r#"{"tenants": {"acme": {"chain": [{"name": "roles"}]}}}"#);
        let e = upload_target("acne", "roles", &["acme", "globex"], Some(&c)).unwrap_err();
        assert_eq!(e.status, 404);
        assert_eq!(
            e.message,
            "no tenant `acne`; the tenants are `acme`, `globex`"
        );
        let e = upload_target("acme", "roles", &[], None).unwrap_err();
        assert_eq!(e.status, 404);
        assert!(e.message.contains("no tenants yet"), "{}", e.message);
        let many: Vec<String> = (0..25).map(|i| format!("t{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = upload_target("x", "r", &many, None).unwrap_err();
        assert!(e.message.ends_with("`t19` and 5 more"), "{}", e.message);
    }

    #[test]
    fn uploads_under_a_name_in_no_chain_are_refused_naming_the_entries() {
        let c = chain(
            r#"{"tenants": {"acme": {"chain": [{"name": "roles"}, {"name": "crm"}, {"name": "shipped", "source": "file:rules/shipped.rule"}]}}}"#,
        );
        let tenants = ["default", "acme"];
        assert_eq!(upload_target("acme", "roles", &tenants, Some(&c)), Ok(()));
        assert_eq!(upload_target("acme", "crm", &tenants, Some(&c)), Ok(()));
        let e = upload_target("acme", "role", &tenants, Some(&c)).unwrap_err();
        assert_eq!(e.status, 409);
        assert_eq!(
            e.message,
            "rule `role` is in no chain of tenant `acme`; its chain has `roles`, `crm`, `shipped`"
        );
        let e = upload_target("acme", "shipped", &tenants, Some(&c)).unwrap_err();
        assert_eq!(e.status, 409);
        assert!(
            e.message.contains("file:rules/shipped.rule"),
            "{}",
            e.message
        );
        let e = upload_target("default", "roles", &tenants, None).unwrap_err();
        assert_eq!(e.status, 409);
        assert!(
            e.message.starts_with("tenant `default` has no rule chain"),
            "{}",
            e.message
        );
    }

    #[test]
    fn stats_of_timings() {
        assert_eq!(stats(Vec::new()), Value::Null);
        assert_eq!(
            stats(vec![5, 1, 3]),
            json!({"min": 1, "median": 3, "mean": 3, "max": 5})
        );
    }
}
