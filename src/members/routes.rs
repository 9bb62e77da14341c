//! `/v1/members`: list, invite, change role, remove. Owners and admins only (the profile's
//! minimum role); the handler adds the rules a profile cannot state: nobody grants or touches
//! a role above their own, and the org keeps an owner.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use serde_json::json;

use super::{
    InviteOut, LINK_TTL_MS, Member, MemberIn, MemberOut, MemberPatchIn, may_assign, may_remove,
    store,
};
use crate::access::grants::{Permission, Role, Scope};
use crate::access::principal::Principal;
use crate::access::tokens::sha256_hex;
use crate::audit::{self, Entry, Outcome, RequestMeta};
use crate::clock::{now_ms, rfc3339};
use crate::http::pagination::{Page, PageQuery};
use crate::http::routes::{Billing, Profile, Route};
use crate::http::{ApiError, ApiResult, ErrorCode, Json, Path, Query};
use crate::ids::{OrgId, UserId};
use crate::state::AppState;
use crate::store::Tx;
use crate::traffic::idempotency::Idem;
use crate::users;

fn profile(p: Permission) -> Profile {
    Profile::users(Scope::Org, p)
        .min_role(Role::Admin)
        .billing(Billing::None)
        .audited()
}

const ABOVE_YOU: &str =
    "you cannot grant, change or remove a role above your own (only an owner manages owners)";

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/v1/members",
            Profile::users(Scope::Org, Permission::Read)
                .min_role(Role::Admin)
                .billing(Billing::None),
            list_members,
        )
        .query::<PageQuery>()
        .summary("List the org's members and their roles")
        .tag("members")
        .returns_list::<MemberOut>(),
        Route::post("/v1/members", profile(Permission::Write), invite_member)
            .error(ErrorCode::Conflict, "the user is already a member of the org")
            .error(ErrorCode::InsufficientRole, ABOVE_YOU)
            .summary("Add a member (creating the user if new); a user without a password gets a one-time set-password link, valid 24 h, in this response only")
            .tag("members")
            .body::<MemberIn>()
            .returns::<InviteOut>(201),
        Route::patch("/v1/members/{id}", profile(Permission::Write), update_member)
            .path::<UserId>()
            .error(ErrorCode::InsufficientRole, ABOVE_YOU)
            .error(ErrorCode::LastOwner, "the member is the org's last owner")
            .summary("Change a member's role")
            .tag("members")
            .body::<MemberPatchIn>()
            .returns::<MemberOut>(200),
        Route::delete("/v1/members/{id}", profile(Permission::Delete), remove_member)
            .path::<UserId>()
            .error(ErrorCode::InsufficientRole, ABOVE_YOU)
            .error(ErrorCode::LastOwner, "the member is the org's last owner")
            .summary("Remove a member from the org; their sessions in it are revoked")
            .tag("members")
            .no_content(),
        Route::post(
            "/v1/auth/set-password",
            Profile::public(),
            super::set_password::set_password,
        )
        .error(
            ErrorCode::Unauthenticated,
            "the link is unknown, used or expired",
        )
        .summary("Set a password with a one-time set-password link; every session of the user is revoked")
        .tag("auth")
        .body::<super::SetPasswordIn>()
        .no_content(),
    ]
}

async fn list_members(
    p: Principal,
    State(app): State<AppState>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Page<MemberOut>>> {
    let page = q.parse()?;
    let rows = store::list(
        &mut app.db.clone(),
        p.tenant().org(),
        page.after.as_deref(),
        page.limit,
    )
    .await?;
    Ok(axum::Json(
        Page::from_rows(rows, page.limit, |m| m.user_id.as_str()).map(|m| MemberOut::from(&m)),
    ))
}

/// The role of the user calling (member routes are for users only).
fn actor_role(p: &Principal) -> ApiResult<Role> {
    p.role()
        .ok_or_else(|| ApiError::internal_msg("a member route reached without a user"))
}

/// The refusal of a change above the caller's role, audited like the guard's refusals.
async fn above_you(
    app: &AppState,
    meta: &RequestMeta,
    p: &Principal,
    target: (&str, &str),
) -> ApiError {
    let t = p.tenant();
    audit::record_alone(
        &app.db,
        meta,
        Entry::new(Some(t.org()), p.actor(), "auth.forbidden")
            .outcome(Outcome::Denied)
            .target(target.0, target.1)
            .details(json!({ "code": ErrorCode::InsufficientRole, "route": "/v1/members" })),
    )
    .await;
    ApiError::Forbidden(ErrorCode::InsufficientRole, ABOVE_YOU.into())
}

fn last_owner() -> ApiError {
    ApiError::Conflict(
        ErrorCode::LastOwner,
        "the org must keep at least one owner: make another member owner first".into(),
    )
}

async fn invite_member(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Json(body): Json<MemberIn>,
) -> ApiResult<Response> {
    if !may_assign(actor_role(&p)?, None, body.role) {
        let email_hash = sha256_hex(&users::normalise_email(&body.email));
        return Err(above_you(&app, &meta, &p, ("email_sha256", &email_hash)).await);
    }
    let t = p.tenant();
    let org = t.org();
    let mut tx = app.db.begin().await?;
    store::lock_owners(&mut tx, org).await?;
    let (user, new_user) = match users::by_email(&mut tx, &body.email).await? {
        Some(u) => (u.id, false),
        // No password until the person sets one with the link: nobody can sign in as it.
        None => (users::create(&mut tx, &body.email, "").await?, true),
    };
    if users::role_in(&mut tx, org, &user).await?.is_some() {
        return Err(ApiError::Conflict(
            ErrorCode::Conflict,
            "this user is already a member of the org".into(),
        ));
    }
    users::add_membership(&mut tx, org, &user, body.role).await?;
    let link = if store::has_password(&mut tx, &user).await? {
        None
    } else {
        Some(issue_link(&app, &mut tx, org, &user).await?)
    };
    let member = store::get(&mut tx, org, &user)
        .await?
        .ok_or_else(|| ApiError::internal_msg("the new membership is missing"))?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(org), p.actor(), "member.added")
            .target("user", user.as_str())
            .details(
                json!({ "role": body.role, "new_user": new_user, "link_issued": link.is_some() }),
            ),
    )
    .await?;
    let out = InviteOut {
        member: MemberOut::from(&member),
        set_password_expires_at: link.as_ref().map(|l| rfc3339(l.1)),
        set_password_url: link.map(|l| l.0),
    };
    idem.commit(tx, StatusCode::CREATED, &out).await
}

/// A new one-time link (`…/console/set-password?token=…`) and when it expires.
pub async fn issue_link(
    app: &AppState,
    tx: &mut Tx,
    org: &OrgId,
    user: &UserId,
) -> ApiResult<(String, i64)> {
    let raw: [u8; 32] = app.keys.random();
    let token = format!(
        "pwt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let expires = now_ms() + LINK_TTL_MS;
    store::new_link(tx, org, user, &sha256_hex(&token), expires).await?;
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", &token)
        .finish();
    let url = format!(
        "{}/console/set-password?{query}",
        app.config.base_url().trim_end_matches('/')
    );
    Ok((url, expires))
}

/// The member `id` of the org, under the org's membership lock, with the number of owners.
async fn locked_member(tx: &mut Tx, org: &OrgId, id: &UserId) -> ApiResult<(Member, i64)> {
    let owners = store::lock_owners(tx, org).await?;
    let m = store::get(tx, org, id).await?.ok_or(ApiError::NotFound)?;
    Ok((m, owners))
}

async fn update_member(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(id): Path<UserId>,
    Json(body): Json<MemberPatchIn>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let org = t.org();
    let mut tx = app.db.begin().await?;
    let (member, owners) = locked_member(&mut tx, org, &id).await?;
    let Some(role) = body.role.filter(|r| *r != member.role) else {
        return idem
            .commit(tx, StatusCode::OK, &MemberOut::from(&member))
            .await;
    };
    if !may_assign(actor_role(&p)?, Some(member.role), role) {
        drop(tx);
        return Err(above_you(&app, &meta, &p, ("user", id.as_str())).await);
    }
    if member.role == Role::Owner && owners <= 1 {
        return Err(last_owner());
    }
    store::set_role(&mut tx, org, &id, role).await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(org), p.actor(), "member.role_changed")
            .target("user", id.as_str())
            .details(json!({ "from": member.role, "to": role })),
    )
    .await?;
    let out = MemberOut::from(&Member { role, ..member });
    idem.commit(tx, StatusCode::OK, &out).await
}

async fn remove_member(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(id): Path<UserId>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let org = t.org();
    let mut tx = app.db.begin().await?;
    let (member, owners) = locked_member(&mut tx, org, &id).await?;
    if !may_remove(actor_role(&p)?, member.role) {
        drop(tx);
        return Err(above_you(&app, &meta, &p, ("user", id.as_str())).await);
    }
    if member.role == Role::Owner && owners <= 1 {
        return Err(last_owner());
    }
    store::remove(&mut tx, org, &id).await?;
    store::revoke_sessions(&mut tx, Some(org), &id).await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(org), p.actor(), "member.removed")
            .target("user", id.as_str())
            .details(json!({ "role": member.role })),
    )
    .await?;
    idem.commit_empty(tx).await
}
