//! The decisions of the operator endpoints under `/.edgeauth/admin/rules/`
//! (the component does their I/O): who may call them, which endpoint a
//! request means, and the dry run's statistics.

use serde_json::{Value, json};

// One check for every admin endpoint (rules and tenant documents).
pub use edgeauth_core::admin::authorized;

/// The admin endpoint a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint<'a> {
    List { tenant: &'a str },
    DryRun { tenant: &'a str },
    Put { tenant: &'a str, rule: &'a str },
    Delete { tenant: &'a str, rule: &'a str },
    NotFound,
}

/// `rest` is the path after the admin prefix.
pub fn endpoint<'a>(method: &http::Method, rest: &'a str) -> Endpoint<'a> {
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        [tenant] if *method == http::Method::GET => Endpoint::List { tenant },
        [tenant, "_run"] if *method == http::Method::POST => Endpoint::DryRun { tenant },
        [tenant, rule] if *method == http::Method::PUT => Endpoint::Put { tenant, rule },
        [tenant, rule] if *method == http::Method::DELETE => Endpoint::Delete { tenant, rule },
        _ => Endpoint::NotFound,
    }
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
        assert_eq!(endpoint(&Method::PUT, "a/b/c"), Endpoint::NotFound);
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
