//! Incidents: what the deployment's operator tells the world on the status page, with a
//! timeline of updates. Deployment-wide, so only the platform org's admins write them (through
//! operator actions, `crate::ops::operator`); the status page reads them.

mod store;

use serde::Serialize;
pub use store::{open, recent, update};

use crate::ids::{IncidentId, IncidentUpdateId};

crate::text_enum::text_enum! {
    /// How bad an incident is (Statuspage's impact).
    pub enum Impact {
        None = "none",
        Minor = "minor",
        Major = "major",
        Critical = "critical",
    }
}

crate::text_enum::text_enum! {
    /// Where an incident stands (Statuspage's incident status).
    pub enum IncidentStatus {
        Investigating = "investigating",
        Identified = "identified",
        Monitoring = "monitoring",
        Resolved = "resolved",
    }
}

crate::text_enum::text_enum! {
    /// The parts of the deployment the status page shows.
    pub enum Component {
        Api = "api",
        Webhooks = "webhooks",
        Scheduler = "scheduler",
        Workers = "workers",
    }
}

impl Component {
    pub fn name(self) -> &'static str {
        match self {
            Component::Api => "API",
            Component::Webhooks => "Webhook delivery",
            Component::Scheduler => "Scheduled messages",
            Component::Workers => "Background processing",
        }
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Update {
    pub id: IncidentUpdateId,
    pub status: IncidentStatus,
    pub message: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub id: IncidentId,
    pub title: String,
    pub impact: Impact,
    pub status: IncidentStatus,
    pub components: Vec<Component>,
    pub created_at: i64,
    pub updated_at: i64,
    pub resolved_at: Option<i64>,
    pub updates: Vec<Update>,
}

impl Incident {
    pub fn is_open(&self) -> bool {
        self.status != IncidentStatus::Resolved
    }
}
