//! Settings of the payment service. Variables and defaults are listed in docs/configuration.md.

use sagaway_common::config::CommonConfig;

#[derive(Clone, Debug)]
pub struct Config {
    pub common: CommonConfig,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self { common: CommonConfig::from_env("PAYMENT", 3335, "payment")? })
    }
}
