//! Scopes (areas), permissions (verbs), roles, and which role implies which grants.
//! This table is the one place the role model lives; `docs/SECURITY.md` reproduces it and a
//! test keeps the two in step.

use serde::{Deserialize, Serialize};

/// An area of the API. The first nine can be granted to API keys; the rest belong to users.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Messages,
    Contacts,
    Conversations,
    ScheduledMessages,
    Webhooks,
    DeadLetters,
    AuditLogs,
    Exports,
    Gdpr,
    /// Managing API keys: users only (a key cannot mint keys).
    ApiKeys,
    /// `/v1/operator/*`: users only.
    Operator,
    /// Org settings: branding, partners.
    Org,
}

impl Scope {
    pub const ALL: [Scope; 12] = [
        Scope::Messages,
        Scope::Contacts,
        Scope::Conversations,
        Scope::ScheduledMessages,
        Scope::Webhooks,
        Scope::DeadLetters,
        Scope::AuditLogs,
        Scope::Exports,
        Scope::Gdpr,
        Scope::ApiKeys,
        Scope::Operator,
        Scope::Org,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Messages => "messages",
            Scope::Contacts => "contacts",
            Scope::Conversations => "conversations",
            Scope::ScheduledMessages => "scheduled_messages",
            Scope::Webhooks => "webhooks",
            Scope::DeadLetters => "dead_letters",
            Scope::AuditLogs => "audit_logs",
            Scope::Exports => "exports",
            Scope::Gdpr => "gdpr",
            Scope::ApiKeys => "api_keys",
            Scope::Operator => "operator",
            Scope::Org => "org",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether an API key may hold this scope.
    pub fn key_grantable(self) -> bool {
        !matches!(self, Scope::ApiKeys | Scope::Operator | Scope::Org)
    }

    fn index(self) -> u32 {
        Scope::ALL.iter().position(|s| *s == self).unwrap_or(0) as u32
    }
}

/// A verb.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Read,
    Write,
    Delete,
}

impl Permission {
    pub const ALL: [Permission; 3] = [Permission::Read, Permission::Write, Permission::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|x| x.as_str() == s)
    }

    fn index(self) -> u32 {
        match self {
            Permission::Read => 0,
            Permission::Write => 1,
            Permission::Delete => 2,
        }
    }
}

/// A member's role in an org: `owner > admin > developer > viewer`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Developer,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Developer, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The scopes a role reaches, and with which permissions.
    pub fn grants(self) -> Grants {
        use Permission::*;
        use Scope::*;
        const DATA: [Scope; 6] = [
            Messages,
            Contacts,
            Conversations,
            ScheduledMessages,
            Webhooks,
            DeadLetters,
        ];
        let mut g = Grants::empty();
        match self {
            Role::Viewer => {
                g.add_all(&DATA, &[Read]);
                g.add(Org, Read);
            }
            Role::Developer => {
                g.add_all(&DATA, &[Read, Write, Delete]);
                g.add_all(&[ApiKeys], &[Read, Write, Delete]);
                g.add(Org, Read);
            }
            Role::Admin | Role::Owner => {
                g.add_all(&Scope::ALL, &Permission::ALL);
            }
        }
        g
    }
}

crate::text_enum::stored_as_text!(Role);
crate::text_enum::stored_as_text!(Scope);
crate::text_enum::stored_as_text!(Permission);

/// A set of (scope, permission) pairs, as a bitset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Grants(u64);

impl Grants {
    pub fn empty() -> Grants {
        Grants(0)
    }

    fn bit(s: Scope, p: Permission) -> u64 {
        1u64 << (s.index() * 3 + p.index())
    }

    pub fn add(&mut self, s: Scope, p: Permission) {
        self.0 |= Self::bit(s, p);
    }

    pub fn add_all(&mut self, scopes: &[Scope], perms: &[Permission]) {
        for s in scopes {
            for p in perms {
                self.add(*s, *p);
            }
        }
    }

    /// An API key's grants: every listed permission on every listed scope.
    pub fn of_key(scopes: &[Scope], perms: &[Permission]) -> Grants {
        let mut g = Grants::empty();
        g.add_all(scopes, perms);
        g
    }

    pub fn has_scope(&self, s: Scope) -> bool {
        Permission::ALL
            .iter()
            .any(|p| self.0 & Self::bit(s, *p) != 0)
    }

    pub fn allows(&self, s: Scope, p: Permission) -> bool {
        self.0 & Self::bit(s, p) != 0
    }
}

/// The role table as Markdown (docs/SECURITY.md carries it; a test keeps the two equal).
pub fn role_table_markdown() -> String {
    let mut s = String::from(
        "| scope | key-grantable | viewer | developer | admin | owner |\n|---|---|---|---|---|---|\n",
    );
    for scope in Scope::ALL {
        let cell = |r: Role| {
            let g = r.grants();
            let perms: Vec<&str> = Permission::ALL
                .iter()
                .filter(|p| g.allows(scope, **p))
                .map(|p| p.as_str())
                .collect();
            if perms.is_empty() {
                "—".to_owned()
            } else {
                perms.join(", ")
            }
        };
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            scope.as_str(),
            if scope.key_grantable() { "yes" } else { "no" },
            cell(Role::Viewer),
            cell(Role::Developer),
            cell(Role::Admin),
            cell(Role::Owner)
        ));
    }
    s
}

/// Parses a comma-separated list, refusing unknown and (for keys) user-only scopes.
pub fn parse_scopes(s: &str, for_key: bool) -> Result<Vec<Scope>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let sc = Scope::parse(part).ok_or_else(|| format!("unknown scope {part:?}"))?;
        if for_key && !sc.key_grantable() {
            return Err(format!("scope {part:?} cannot be granted to an API key"));
        }
        if !out.contains(&sc) {
            out.push(sc);
        }
    }
    if out.is_empty() {
        return Err("at least one scope is required".into());
    }
    Ok(out)
}

pub fn parse_permissions(s: &str) -> Result<Vec<Permission>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p = Permission::parse(part).ok_or_else(|| format!("unknown permission {part:?}"))?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err("at least one permission is required".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_nest() {
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Developer);
        for s in Scope::ALL {
            for p in Permission::ALL {
                if Role::Viewer.grants().allows(s, p) {
                    assert!(Role::Developer.grants().allows(s, p), "{s:?} {p:?}");
                }
                if Role::Developer.grants().allows(s, p) {
                    assert!(Role::Admin.grants().allows(s, p), "{s:?} {p:?}");
                }
            }
        }
        assert!(!Role::Developer.grants().has_scope(Scope::AuditLogs));
        assert!(
            !Role::Viewer
                .grants()
                .allows(Scope::Contacts, Permission::Write)
        );
    }

    #[test]
    fn security_doc_carries_the_role_table() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/SECURITY.md"))
            .expect("docs/SECURITY.md");
        assert!(
            doc.contains(&role_table_markdown()),
            "docs/SECURITY.md must contain this role table:\n{}",
            role_table_markdown()
        );
    }

    #[test]
    fn key_scopes_exclude_user_areas() {
        assert!(parse_scopes("messages,contacts", true).is_ok());
        assert!(parse_scopes("api_keys", true).is_err());
        assert!(parse_scopes("nope", false).is_err());
        assert!(parse_scopes("", false).is_err());
    }
}
