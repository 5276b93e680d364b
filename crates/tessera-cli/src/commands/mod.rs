//! One module per subcommand; each has its clap `Args` and a `run` function.

pub(crate) mod base;
pub(crate) mod demo;
pub(crate) mod gateway;
pub(crate) mod keygen;
pub(crate) mod keys;
pub(crate) mod serve;
pub(crate) mod sign;
pub(crate) mod verify;
