//! What is SmartEM-specific: the roles and their commands, `.env`, and the
//! data-dir check.

pub mod datadir;
pub mod dotenv;
pub mod roles;
