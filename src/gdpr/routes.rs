//! `/v1/gdpr/contacts/{external_key}`: export and erasure.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{ErasureOut, SubjectExport, erase_by_id, store};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::audit::{self, Entry, RequestMeta};
use crate::contacts::ExternalKey;
use crate::deliveries::fanout::subscribers;
use crate::events::{self, EventType};
use crate::http::routes::{Billing, Profile, Route};
use crate::http::{ApiError, ApiResult, Path};
use crate::state::AppState;
use crate::traffic::idempotency::Idem;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/v1/gdpr/contacts/{external_key}/export",
            Profile::api(Scope::Gdpr, Permission::Read).billing(Billing::None),
            export_contact_data,
        )
        .path::<ExternalKey>()
        .summary("Everything held about a contact: the contact, conversations, messages, scheduled messages, events")
        .tag("gdpr")
        .returns::<SubjectExport>(200),
        Route::delete(
            "/v1/gdpr/contacts/{external_key}",
            Profile::api(Scope::Gdpr, Permission::Delete).billing(Billing::None).audited(),
            erase_contact_data,
        )
        .path::<ExternalKey>()
        .summary("Erase a contact and their messages' content (a tombstone is kept for audit)")
        .tag("gdpr")
        .returns::<ErasureOut>(200),
    ]
}

async fn export_contact_data(
    p: Principal,
    State(app): State<AppState>,
    Path(external_key): Path<ExternalKey>,
) -> ApiResult<axum::Json<SubjectExport>> {
    let t = p.tenant();
    let mut db = app.db.clone();
    let contact = crate::contacts::store::by_external_key(&mut db, &t, &external_key)
        .await?
        .ok_or(ApiError::NotFound)?;
    let ids = store::subject_ids(&mut db, &t, &contact.id).await?;
    let events = store::events_mentioning(&mut db, &t, &ids)
        .await?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let convs =
        crate::conversations::store::list(&mut db, &t, None, 10_000, Some(&contact.id), None)
            .await?;
    let mut messages = Vec::new();
    let mut scheduled_messages = Vec::new();
    for c in &convs {
        let ms = crate::messages::store::of_conversation(&mut db, &t, &c.id).await?;
        messages.extend(ms.into_iter().map(Into::into));
        let ss = crate::scheduled::store::of_conversation(&mut db, &t, &c.id).await?;
        scheduled_messages.extend(ss.into_iter().map(Into::into));
    }
    Ok(axum::Json(SubjectExport {
        object: "gdpr_export",
        conversations: convs.into_iter().map(Into::into).collect(),
        messages,
        scheduled_messages,
        events,
        contact: contact.into(),
    }))
}

async fn erase_contact_data(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(external_key): Path<ExternalKey>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    let contact = crate::contacts::store::by_external_key(&mut tx, &t, &external_key)
        .await?
        .ok_or(ApiError::NotFound)?;
    let erased = erase_by_id(&mut tx, &t, &contact.id).await?;
    crate::contacts::store::erase(&mut tx, &t, &contact.id).await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(t.org()), p.actor(), "gdpr.erased")
            .target("contact", contact.id.as_str())
            .details(json!({ "messages_erased": erased.messages, "events_redacted": erased.events, "dead_letters_redacted": erased.dead_letters })),
    )
    .await?;
    let fan_out = subscribers(&mut tx, &t).await?;
    let data = json!({ "id": contact.id, "erased": true, "livemode": t.livemode() });
    events::emit(&mut tx, &t, fan_out, EventType::ContactDeleted, data).await?;
    let out = ErasureOut {
        object: "gdpr_erasure",
        contact_id: contact.id,
        erased: true,
        messages_erased: erased.messages,
        events_redacted: erased.events,
        dead_letters_redacted: erased.dead_letters,
    };
    idem.commit(tx, StatusCode::OK, &out).await
}
