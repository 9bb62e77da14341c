//! The job layer's witness, in a file of its own so that the types needing it
//! ([`crate::access::principal::Tenant::for_background`]) depend on it alone, not on the runner.

/// Proof that the code holding it is the job layer (a job run, a background loop): only the
/// runner makes one, and [`crate::access::principal::Tenant::for_background`] needs it, so no
/// request handler can act for an org other than its principal's.
#[derive(Clone)]
pub struct Background(());

impl Background {
    /// For the runner only (the one place that starts job runs and loops).
    pub(super) fn new() -> Background {
        Background(())
    }
}
