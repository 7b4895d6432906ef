//! The guards a service puts in front of its routers: bearer-token checks ([`crate::auth`]) and the
//! per-user rate limit ([`crate::rate`]), built once from the service's settings.

use std::sync::Arc;

use axum::Router;

use crate::{
    auth::{Verifier, admin_only, protect},
    config::CommonConfig,
    rate::{PerUser, limit_per_user},
};

/// The guards a service puts in front of its routers: token checks and the per-user rate limit.
#[derive(Clone)]
pub struct Guards {
    pub verifier: Arc<Verifier>,
    pub per_user: Arc<PerUser>,
}

impl Guards {
    pub fn new(cfg: &CommonConfig) -> Self {
        Self { verifier: Verifier::new(cfg.auth.clone()), per_user: PerUser::new(cfg.user_rate.per_sec, cfg.user_rate.burst) }
    }

    /// Every route needs a valid token (any role).
    pub fn signed_in<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        protect(router, self.verifier.clone())
    }

    /// Every route needs a valid token with the admin role.
    pub fn admin<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        admin_only(router, self.verifier.clone())
    }

    /// Every route needs a valid token and is limited per user (429 + `Retry-After` over the limit).
    pub fn signed_in_rate_limited<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        let limited = router.layer(axum::middleware::from_fn_with_state(self.per_user.clone(), limit_per_user));
        self.signed_in(limited)
    }
}
