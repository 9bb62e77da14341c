//! Issuing a token pair: an access token (a signed JWT) and a refresh token of a family, with
//! the access token's claims stored beside the refresh token's hash. Both halves can be
//! produced again, identically, from what is stored and what the client presents: the access
//! token is an HMAC of its stored claims, and a refresh token after a login's first one is
//! derived from its predecessor ([`tokens::successor_refresh_token`]).

use super::{TokenOut, store};
use crate::access::grants::Role;
use crate::access::secrets::Keys;
use crate::access::tokens::{self, Claims};
use crate::clock::now_ms;
use crate::http::ApiResult;
use crate::ids::{OrgId, RefreshFamilyId, TokenId, UserId};
use crate::state::AppState;
use crate::store::Tx;

/// A refresh token as handed out (`raw`) and as stored (`hash`).
pub struct RefreshSecret {
    pub raw: String,
    pub hash: String,
}

impl RefreshSecret {
    /// The first token of a new family: random.
    pub fn first(keys: &Keys) -> RefreshSecret {
        let (raw, hash) = tokens::new_refresh_token(keys);
        RefreshSecret { raw, hash }
    }

    /// The token that succeeds `previous` (as presented by the client).
    pub fn successor_of(keys: &Keys, previous: &str) -> RefreshSecret {
        let (raw, hash) = tokens::successor_refresh_token(keys, previous);
        RefreshSecret { raw, hash }
    }
}

/// Stores `refresh` in `family` and issues an access token beside it.
pub async fn issue(
    app: &AppState,
    tx: &mut Tx,
    user: &UserId,
    org: &OrgId,
    role: Role,
    family: &RefreshFamilyId,
    refresh: RefreshSecret,
) -> ApiResult<TokenOut> {
    let now = now_ms();
    let expires_at =
        now + i64::try_from(app.config.refresh_token_ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let ttl = i64::try_from(app.config.access_token_ttl.as_secs()).unwrap_or(900);
    let claims = Claims {
        iss: tokens::ISSUER.into(),
        aud: tokens::AUDIENCE.into(),
        sub: user.to_string(),
        org: org.to_string(),
        role: role.as_str().into(),
        sid: family.to_string(),
        iat: now / 1000,
        nbf: now / 1000,
        exp: now / 1000 + ttl,
        jti: TokenId::new().to_string(),
        env: None,
    };
    store::insert(tx, family, user, org, &refresh.hash, expires_at, &claims).await?;
    Ok(answer(&app.keys, &claims, refresh.raw, org.clone(), role))
}

/// The response for a pair: the same claims and refresh token always give the same body.
pub fn answer(keys: &Keys, claims: &Claims, refresh: String, org: OrgId, role: Role) -> TokenOut {
    TokenOut {
        access_token: tokens::sign(keys, claims),
        refresh_token: refresh,
        token_type: "Bearer",
        expires_in: u64::try_from(claims.exp - claims.iat).unwrap_or(0),
        org_id: org,
        role,
    }
}
