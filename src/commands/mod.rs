//! The subcommands: each explains or uses the same plan as run mode.

pub mod doctor;
pub mod gen_etc;
pub mod healthcheck;
