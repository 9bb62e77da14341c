//! The `export.build` job: one consistent snapshot of the tenant's data, as NDJSON lines of the
//! API's own objects (`{"type": "contact", "data": {…}}`), with no secret.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::store;
use crate::access::principal::Tenant;
use crate::clock::{now_ms, rfc3339};
use crate::ids::ExportId;
use crate::jobs::queue::{begin_finish, complete};
use crate::jobs::{Completion, Job, JobContext, JobKind};
use crate::store::Tx;

pub struct BuildExport;

#[derive(Debug, Serialize, Deserialize)]
pub struct BuildPayload {
    pub export_id: ExportId,
}

impl JobKind for BuildExport {
    const KIND: &'static str = "export.build";
    type Payload = BuildPayload;
}

impl Job for BuildExport {
    type Kind = Self;

    async fn run(&self, cx: &JobContext<'_>, p: BuildPayload) -> anyhow::Result<()> {
        let (state, job) = (cx.app, cx.job);
        let Some((org, env)) = store::owner(&mut state.db.clone(), &p.export_id).await? else {
            complete(&state.db, job, &Completion::Done).await?;
            return Ok(());
        };
        let t = Tenant::for_background(org, env, cx.background);
        let mut snap = state.db.begin_snapshot().await?;
        let out = ndjson(&mut snap, &t, &p.export_id).await?;
        snap.rollback().await?;
        let digest = crate::ids::hex(Sha256::digest(out.as_bytes()));
        let Some(mut tx) = begin_finish(&state.db, job, &Completion::Done).await? else {
            return Ok(());
        };
        store::complete(&mut tx, &p.export_id, &out, &digest).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Appends one line per object, typed by `label`.
fn lines<T: Serialize>(out: &mut String, label: &str, items: impl IntoIterator<Item = T>) {
    for data in items {
        out.push_str(&json!({ "type": label, "data": data }).to_string());
        out.push('\n');
    }
}

async fn ndjson(snap: &mut Tx, t: &Tenant, id: &ExportId) -> anyhow::Result<String> {
    let mut out = String::new();
    let head = json!({ "id": id, "org_id": t.org(), "livemode": t.livemode(), "created_at": rfc3339(now_ms()) });
    lines(&mut out, "export", [head]);
    let contacts = crate::contacts::store::all(snap, t).await?;
    lines(
        &mut out,
        "contact",
        contacts.into_iter().map(crate::contacts::ContactOut::from),
    );
    let conversations = crate::conversations::store::all(snap, t).await?;
    lines(
        &mut out,
        "conversation",
        conversations
            .into_iter()
            .map(crate::conversations::ConversationOut::from),
    );
    let messages = crate::messages::store::all(snap, t).await?;
    lines(
        &mut out,
        "message",
        messages.into_iter().map(crate::messages::MessageOut::from),
    );
    let scheduled = crate::scheduled::store::all(snap, t).await?;
    lines(
        &mut out,
        "scheduled_message",
        scheduled
            .into_iter()
            .map(crate::scheduled::ScheduledOut::from),
    );
    let endpoints = crate::webhooks::store::all(snap, t).await?;
    lines(
        &mut out,
        "webhook_endpoint",
        endpoints.iter().map(crate::webhooks::EndpointOut::from),
    );
    let dead_letters = crate::dead_letters::store::all(snap, t).await?;
    lines(
        &mut out,
        "dead_letter",
        dead_letters
            .into_iter()
            .map(crate::dead_letters::DeadLetterOut::from),
    );
    Ok(out)
}
