//! Route profiles as data. Every route is registered as a [`Route`]: method, path, handler and
//! the [`Profile`] its guards enforce. The same list drives the router, the guards,
//! `rampart routes`, the OpenAPI document and the authorization-matrix tests; the application
//! router can only be built from it, so a route without a profile cannot exist.

use std::sync::Arc;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use serde::Serialize;
use serde_json::Value;

use super::error::ErrorCode;
use crate::access::grants::{Permission, Role, Scope};
use crate::state::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// A user's access token (`Authorization: Bearer <jwt>`).
    User,
    /// An API key (`Authorization: Bearer rk_…`).
    ApiKey,
}

/// Which limiter a route is counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateClass {
    /// Not limited (health, build id).
    None,
    /// Unauthenticated: per client IP and route (`RAMPART_PUBLIC_RATE_LIMIT`).
    PublicIp,
    /// Per credential (the key's `rate_limit`) and per org, plus the key's and org's quota.
    Principal,
}

/// How a route treats `Idempotency-Key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Idempotency {
    None,
    Accepted,
    Required,
}

/// The subscription a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Billing {
    /// Not gated (auth, key management, GDPR rights, billing itself).
    None,
    /// An active or trialing subscription of any tier.
    Standard,
    /// An active or trialing subscription of tier `full`.
    Full,
}

/// What the audit log records for a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Audit {
    /// Only refusals (every 401/403 on `/v1` is audited regardless).
    Denials,
    /// The handler writes an audit entry with its change, in the same transaction.
    Mutation,
}

/// The guard profile of one route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// Empty: public.
    pub auth: Vec<AuthKind>,
    pub scope: Option<Scope>,
    pub permission: Option<Permission>,
    /// A user must hold at least this role (on top of the scope and permission).
    pub min_role: Option<Role>,
    pub rate_limit: RateClass,
    pub idempotency: Idempotency,
    pub billing: Billing,
    pub audit: Audit,
    /// Whether `rk_test_` keys (sandbox) may call it.
    pub test_mode: bool,
}

impl Profile {
    /// Unauthenticated, limited per client IP.
    pub fn public() -> Profile {
        Profile {
            auth: Vec::new(),
            scope: None,
            permission: None,
            min_role: None,
            rate_limit: RateClass::PublicIp,
            idempotency: Idempotency::None,
            billing: Billing::None,
            audit: Audit::Denials,
            test_mode: true,
        }
    }

    /// Unauthenticated and unlimited: probes a load balancer calls often.
    pub fn probe() -> Profile {
        Profile {
            rate_limit: RateClass::None,
            ..Profile::public()
        }
    }

    /// The public API: users and API keys, scope + permission, billing standard.
    pub fn api(scope: Scope, permission: Permission) -> Profile {
        Profile {
            auth: vec![AuthKind::User, AuthKind::ApiKey],
            scope: Some(scope),
            permission: Some(permission),
            min_role: None,
            rate_limit: RateClass::Principal,
            idempotency: if permission == Permission::Read {
                Idempotency::None
            } else {
                Idempotency::Accepted
            },
            billing: Billing::Standard,
            audit: Audit::Denials,
            test_mode: true,
        }
    }

    /// Management routes for logged-in users only.
    pub fn users(scope: Scope, permission: Permission) -> Profile {
        Profile {
            auth: vec![AuthKind::User],
            ..Profile::api(scope, permission)
        }
    }

    pub fn audited(mut self) -> Profile {
        self.audit = Audit::Mutation;
        self
    }

    pub fn idempotency(mut self, i: Idempotency) -> Profile {
        self.idempotency = i;
        self
    }

    pub fn billing(mut self, b: Billing) -> Profile {
        self.billing = b;
        self
    }

    pub fn min_role(mut self, r: Role) -> Profile {
        self.min_role = Some(r);
        self
    }

    pub fn live_only(mut self) -> Profile {
        self.test_mode = false;
        self
    }

    pub fn rate(mut self, r: RateClass) -> Profile {
        self.rate_limit = r;
        self
    }

    pub fn is_public(&self) -> bool {
        self.auth.is_empty()
    }
}

/// What the OpenAPI document says about a route beyond its profile.
#[derive(Clone, Default)]
pub struct Docs {
    pub summary: &'static str,
    pub tag: &'static str,
    pub body: Option<SchemaFn>,
    /// An empty body is accepted too (`OptionalJson`).
    pub body_optional: bool,
    pub ok_status: u16,
    pub ok: Option<SchemaFn>,
    pub ok_content_type: Option<&'static str>,
    pub list: bool,
    /// The query parameters, from the struct the handler's `Query<T>` parses.
    pub query: Option<ParamsFn>,
    /// The schemas of the path parameters, in the order the path names them, from the types
    /// the handler's `Path<T>` parses (one [`Route::path`] call each).
    pub path: Vec<SchemaFn>,
    /// Error codes this route answers beyond what its profile, body and parameters imply.
    pub errors: Vec<(ErrorCode, &'static str)>,
    /// Request headers the handler reads (besides credentials and `Idempotency-Key`).
    pub headers: Vec<Header>,
}

/// A request header a handler reads, as the document states it.
#[derive(Clone)]
pub struct Header {
    pub name: &'static str,
    pub required: bool,
    pub description: &'static str,
    pub schema: fn() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
}

/// Produces the parameter objects of a query struct.
pub type ParamsFn = Arc<dyn Fn() -> Vec<Value> + Send + Sync>;

fn params_fn<T: utoipa::IntoParams>() -> ParamsFn {
    Arc::new(|| {
        T::into_params(|| Some(utoipa::openapi::path::ParameterIn::Query))
            .into_iter()
            .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
            .collect()
    })
}

/// The inline schema of a path parameter type (ids carry their pattern).
fn inline_schema_fn<T: utoipa::PartialSchema + 'static>() -> SchemaFn {
    Arc::new(|_: &mut Vec<(String, Value)>| {
        serde_json::to_value(T::schema()).unwrap_or(Value::Null)
    })
}

/// Produces a schema reference and registers the named schemas it needs.
pub type SchemaFn = Arc<dyn Fn(&mut Vec<(String, Value)>) -> Value + Send + Sync>;

fn schema_fn<T: utoipa::ToSchema + 'static>() -> SchemaFn {
    Arc::new(|components: &mut Vec<(String, Value)>| {
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        for (name, s) in nested {
            components.push((name, serde_json::to_value(s).unwrap_or(Value::Null)));
        }
        let name = T::name().to_string();
        let schema =
            serde_json::to_value(<T as utoipa::PartialSchema>::schema()).unwrap_or(Value::Null);
        components.push((name.clone(), schema));
        serde_json::json!({ "$ref": format!("#/components/schemas/{name}") })
    })
}

/// One registered route.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub operation_id: String,
    pub profile: Profile,
    pub docs: Docs,
    pub(crate) handler: MethodRouter<AppState>,
}

/// The operation id is the handler's function name (`create_contact`).
fn operation_id<H>() -> String {
    let full = std::any::type_name::<H>();
    full.rsplit("::").next().unwrap_or(full).to_owned()
}

impl Route {
    pub fn new<H, T>(method: Method, path: &'static str, profile: Profile, handler: H) -> Route
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        Route {
            operation_id: operation_id::<H>(),
            method,
            path,
            profile,
            docs: Docs {
                ok_status: 200,
                ..Docs::default()
            },
            handler: on(filter, handler),
        }
    }

    pub fn get<H: Handler<T, AppState>, T: 'static>(p: &'static str, prof: Profile, h: H) -> Route {
        Route::new(Method::GET, p, prof, h)
    }
    pub fn post<H: Handler<T, AppState>, T: 'static>(
        p: &'static str,
        prof: Profile,
        h: H,
    ) -> Route {
        Route::new(Method::POST, p, prof, h)
    }
    pub fn put<H: Handler<T, AppState>, T: 'static>(p: &'static str, prof: Profile, h: H) -> Route {
        Route::new(Method::PUT, p, prof, h)
    }
    pub fn patch<H: Handler<T, AppState>, T: 'static>(
        p: &'static str,
        prof: Profile,
        h: H,
    ) -> Route {
        Route::new(Method::PATCH, p, prof, h)
    }
    pub fn delete<H: Handler<T, AppState>, T: 'static>(
        p: &'static str,
        prof: Profile,
        h: H,
    ) -> Route {
        Route::new(Method::DELETE, p, prof, h)
    }

    pub fn summary(mut self, s: &'static str) -> Route {
        self.docs.summary = s;
        self
    }

    pub fn tag(mut self, t: &'static str) -> Route {
        self.docs.tag = t;
        self
    }

    pub fn body<T: utoipa::ToSchema + 'static>(mut self) -> Route {
        self.docs.body = Some(schema_fn::<T>());
        self
    }

    /// A JSON body the route also accepts empty (`OptionalJson<T>`).
    pub fn optional_body<T: utoipa::ToSchema + 'static>(mut self) -> Route {
        self.docs.body = Some(schema_fn::<T>());
        self.docs.body_optional = true;
        self
    }

    pub fn returns<T: utoipa::ToSchema + 'static>(mut self, status: u16) -> Route {
        self.docs.ok_status = status;
        self.docs.ok = Some(schema_fn::<T>());
        self
    }

    /// A `{data: [T], next_cursor}` page.
    pub fn returns_list<T: utoipa::ToSchema + 'static>(mut self) -> Route {
        self.docs.ok_status = 200;
        self.docs.ok = Some(schema_fn::<T>());
        self.docs.list = true;
        self
    }

    pub fn no_content(mut self) -> Route {
        self.docs.ok_status = 204;
        self.docs.ok = None;
        self
    }

    pub fn content_type(mut self, ct: &'static str) -> Route {
        self.docs.ok_content_type = Some(ct);
        self
    }

    /// The query parameters: `T` is the struct the handler's `Query<T>` parses, so the
    /// document lists exactly the names, types, enums and bounds it accepts.
    pub fn query<T: utoipa::IntoParams>(mut self) -> Route {
        self.docs.query = Some(params_fn::<T>());
        self
    }

    /// The next path parameter's type: the `T` of the handler's `Path<T>`, or the next
    /// element of its `Path<(A, B)>` (an id type carries its prefix and pattern).
    pub fn path<T: utoipa::PartialSchema + 'static>(mut self) -> Route {
        self.docs.path.push(inline_schema_fn::<T>());
        self
    }

    /// A request header the handler reads.
    pub fn header(mut self, h: Header) -> Route {
        self.docs.headers.push(h);
        self
    }

    /// An error this route answers that its profile, body and parameters do not imply (a
    /// rule of its handler), and when.
    pub fn error(mut self, code: ErrorCode, when: &'static str) -> Route {
        self.docs.errors.push((code, when));
        self
    }

    /// The row `rampart routes` prints.
    pub fn describe(&self) -> RouteDescription {
        RouteDescription {
            method: self.method.to_string(),
            path: self.path.to_owned(),
            operation_id: self.operation_id.clone(),
            profile: self.profile.clone(),
        }
    }
}

/// A route as `rampart routes --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct RouteDescription {
    pub method: String,
    pub path: String,
    pub operation_id: String,
    pub profile: Profile,
}
