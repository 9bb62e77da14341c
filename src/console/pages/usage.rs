//! Usage against the org's limits, as the API reports it on every answer: `RateLimit-Policy`
//! (each policy's quota `q` per window `w` seconds) and `RateLimit` (each policy's remaining
//! `r` and seconds to reset `t`), drawn as labelled meters with the numbers in words beside
//! them. Server-rendered `<meter>` elements: no script.

use maud::{Markup, html};

/// One policy as the two fields give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub quota: u64,
    pub window_s: u64,
    pub remaining: Option<u64>,
    pub reset_s: Option<u64>,
}

/// The items of a RateLimit field: `"name";k=v;k=v, …` (structured-field list of strings with
/// integer parameters); what does not parse is left out.
fn items(field: &str) -> Vec<(String, Vec<(String, u64)>)> {
    field
        .split(',')
        .filter_map(|item| {
            let mut parts = item.trim().split(';');
            let name = parts.next()?.trim().strip_prefix('"')?.strip_suffix('"')?;
            let params = parts
                .filter_map(|p| {
                    let (k, v) = p.trim().split_once('=')?;
                    Some((k.to_owned(), v.parse().ok()?))
                })
                .collect();
            Some((name.to_owned(), params))
        })
        .collect()
}

fn param(params: &[(String, u64)], key: &str) -> Option<u64> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

/// Every policy of `RateLimit-Policy`, with what `RateLimit` says of it.
pub fn policies(policy: &str, ratelimit: &str) -> Vec<Policy> {
    let now = items(ratelimit);
    items(policy)
        .into_iter()
        .filter_map(|(name, p)| {
            let current = now.iter().find(|(n, _)| *n == name).map(|(_, p)| p);
            Some(Policy {
                quota: param(&p, "q")?,
                window_s: param(&p, "w")?,
                remaining: current.and_then(|c| param(c, "r")),
                reset_s: current.and_then(|c| param(c, "t")),
                name,
            })
        })
        .collect()
}

/// What a policy limits, in words (the guard's policy names; another name is shown as is).
fn label(name: &str) -> String {
    match name {
        "org" => "Rate limit (the org's)".into(),
        "org_quota" => "Quota (the org's)".into(),
        "key" => "Rate limit (this key's)".into(),
        "key_quota" => "Quota (this key's)".into(),
        other => format!("Limit “{other}”"),
    }
}

fn per(window_s: u64) -> String {
    match window_s {
        1 => "per second".into(),
        60 => "per minute".into(),
        3600 => "per hour".into(),
        86_400 => "per day".into(),
        w if w.is_multiple_of(86_400) => format!("per {} days", w / 86_400),
        w => format!("per {w} s"),
    }
}

/// `t` seconds as "3 h 20 min", "45 s".
fn duration(t: u64) -> String {
    match t {
        0..=59 => format!("{t} s"),
        60..=3599 => format!("{} min", t / 60),
        _ => format!("{} h {} min", t / 3600, t % 3600 / 60),
    }
}

/// Thousands separated by commas.
fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The meters, one per policy, each labelled, with its numbers in words.
pub fn meters(policies: &[Policy]) -> Markup {
    html! {
        @if policies.is_empty() {
            p class="muted" { "The API reported no limits for this session." }
        }
        @for (i, p) in policies.iter().enumerate() {
            @let id = format!("usage-{i}");
            @let used = p.remaining.map(|r| p.quota.saturating_sub(r));
            div class="usage" {
                label for=[used.map(|_| &id)] { (label(&p.name)) ": " (count(p.quota)) " requests " (per(p.window_s)) }
                @if let Some(used) = used {
                    meter id=(id) min="0" max=(p.quota) low=(p.quota * 3 / 4) high=(p.quota * 9 / 10) optimum="0" value=(used) {
                        (count(used)) " of " (count(p.quota))
                    }
                    p class="muted" {
                        (count(used)) " used, " (count(p.quota - used)) " left"
                        @if let Some(t) = p.reset_s { "; resets in " (duration(t)) }
                        "."
                    }
                } @else {
                    p class="muted" { "Current use not reported." }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_fields_are_read_per_policy() {
        let p = policies(
            "\"org\";q=100;w=1, \"org_quota\";q=1000000;w=86400",
            "\"org\";r=97;t=1, \"org_quota\";r=999000;t=4000",
        );
        assert_eq!(
            p,
            vec![
                Policy {
                    name: "org".into(),
                    quota: 100,
                    window_s: 1,
                    remaining: Some(97),
                    reset_s: Some(1)
                },
                Policy {
                    name: "org_quota".into(),
                    quota: 1_000_000,
                    window_s: 86_400,
                    remaining: Some(999_000),
                    reset_s: Some(4000)
                },
            ]
        );
        // A policy the RateLimit field leaves out is still listed, without its use.
        let p = policies(
            "\"org\";q=100;w=1, \"org_quota\";q=10;w=60",
            "\"org\";r=1;t=1",
        );
        assert_eq!(p[1].remaining, None);
        assert!(policies("", "").is_empty());
        assert!(policies("garbage", "\"x\";r=1").is_empty());
    }

    #[test]
    fn words() {
        assert_eq!(count(1_000_000), "1,000,000");
        assert_eq!(count(999), "999");
        assert_eq!(per(2_592_000), "per 30 days");
        assert_eq!(duration(3 * 3600 + 20 * 60), "3 h 20 min");
        let html = meters(&policies(
            "\"org_quota\";q=1000;w=86400",
            "\"org_quota\";r=250;t=60",
        ))
        .into_string();
        assert!(html.contains("<meter id=\"usage-0\""), "{html}");
        assert!(html.contains("value=\"750\""), "{html}");
        assert!(
            html.contains("750 used, 250 left; resets in 1 min."),
            "{html}"
        );
        assert!(
            html.contains("<label for=\"usage-0\">Quota (the org's): 1,000 requests per day"),
            "{html}"
        );
    }
}
