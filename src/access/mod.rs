//! Identity and access: who is calling, on behalf of which org, with which grants.

pub mod client_ip;
pub mod grants;
pub mod guard;
pub mod password;
pub mod principal;
pub mod secrets;
pub mod tokens;
