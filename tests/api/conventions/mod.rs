//! SPEC §2: request ids, build id, security headers, problems for every error, OpenAPI, docs,
//! probes.

mod bodies;
mod docs;
mod headers;
mod openapi_contract;
mod probes;

pub fn scenarios() -> Vec<(&'static str, crate::Scenario)> {
    [
        headers::scenarios(),
        docs::scenarios(),
        probes::scenarios(),
        bodies::scenarios(),
        openapi_contract::scenarios(),
    ]
    .concat()
}

pub fn plain() -> Vec<(&'static str, crate::Plain)> {
    [probes::plain(), openapi_contract::plain()].concat()
}
