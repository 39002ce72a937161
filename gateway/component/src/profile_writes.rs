//! A profile plan's store operations, in the order the core gives them
//! (`edgeauth_core::profiles::Plan::steps`: a new profile's list entry,
//! the profile, its indexes): the one executor of sign-ins and imports.

use edgeauth_core::kv_schema;
use edgeauth_core::profiles::{Plan, Step};

use crate::kv::{Kv, Unavailable};

/// Performs `plan` for `tenant`, stopping at the first failure.
pub fn apply(kv: &Kv, tenant: &str, plan: &Plan) -> Result<(), Unavailable> {
    for step in plan.steps() {
        match step {
            Step::ListEntry(id) => {
                let n = kv.increment(&kv_schema::profile_seq(tenant), 1)?;
                kv.put_permanent(
                    &kv_schema::profile_list(tenant, n.max(0) as u64),
                    id.as_bytes(),
                )?;
            }
            Step::Put(key, value) => kv.put_permanent(key, value)?,
        }
    }
    Ok(())
}
