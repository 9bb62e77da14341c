//! SPEC §3: sessions, API keys, guards, tenancy, the audit log.

mod audit;
mod guards;
mod keys;
mod login;
mod matrix;
mod sessions;

pub fn scenarios() -> Vec<(&'static str, crate::Scenario)> {
    [
        login::scenarios(),
        sessions::scenarios(),
        guards::scenarios(),
        keys::scenarios(),
        audit::scenarios(),
        matrix::scenarios(),
    ]
    .concat()
}

pub const PW: &str = "correct horse battery staple";
