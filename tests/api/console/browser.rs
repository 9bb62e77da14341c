//! End-to-end through a real headless Chromium driven over WebDriver (`chromedriver`,
//! `fantoccini`): sign in, create a key and read its secret, create an endpoint pointing at a
//! local receiver, see a delivery in the log and resend it, dead-letter and replay from the
//! console, invite a viewer who sees no write control, sign out. With
//! `RAMPART_CONSOLE_SCREENSHOTS=<dir>` it also saves the main pages at 390 px and 1280 px
//! wide (how docs/console/*.png are made).

use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::fixture::{OWNER_EMAIL, OWNER_PASSWORD};
use crate::helpers::*;
use crate::receiver::{Receiver, Reply};

/// Whether `chromedriver` and `chromium` are installed.
pub fn available() -> bool {
    let ok = |bin: &str| {
        std::process::Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    ok("chromium") && ok("chromedriver")
}

/// A chromedriver process on a free port, ended with the test.
struct Driver {
    _child: tokio::process::Child,
    url: String,
}

async fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    // Polls until chromedriver listens (it takes a moment to start).
    eventually(Duration::from_secs(20), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await
    .expect("chromedriver listens");
    Driver { _child: child, url }
}

async fn browser(d: &Driver, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-sync",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&d.url)
        .await
        .expect("a WebDriver session")
}

async fn fill(c: &Client, css: &str, text: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The page's source once it contains `text` (a click's navigation may still be under way
/// when the click returns); panics with the page otherwise.
async fn wait_for_text(c: &Client, text: &str) -> String {
    let found = eventually(Duration::from_secs(15), || async {
        let s = c.source().await.ok()?;
        s.contains(text).then_some(s)
    })
    .await;
    match found {
        Some(s) => s,
        None => panic!("{text:?} never appeared: {}", c.source().await.unwrap()),
    }
}

/// Waits until the browser is at `want`.
async fn wait_for_path(c: &Client, want: &str) {
    let at = eventually(Duration::from_secs(15), || async {
        (path(c).await == want).then_some(())
    })
    .await;
    assert!(at.is_some(), "never reached {want}: at {}", path(c).await);
}

async fn path(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_owned()
}

async fn sign_in(c: &Client, app: &TestApp, email: &str, password: &str) {
    c.goto(&app.url("/console/login")).await.unwrap();
    fill(c, "#email", email).await;
    fill(c, "#password", password).await;
    click(c, "button[type=submit]").await;
}

async fn shot(c: &Client, name: &str) {
    let Ok(dir) = std::env::var("RAMPART_CONSOLE_SCREENSHOTS") else {
        return;
    };
    for (w, h) in [(390u32, 844u32), (1280, 900)] {
        c.set_window_size(w, h).await.unwrap();
        let png = c.screenshot().await.unwrap();
        std::fs::write(format!("{dir}/{name}-{w}.png"), png).unwrap();
    }
    c.set_window_size(1280, 1000).await.unwrap();
}

/// Post forms in the page, as (action) strings.
async fn post_forms(c: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for f in c.find_all(Locator::Css("form[method=post]")).await.unwrap() {
        out.push(f.attr("action").await.unwrap().unwrap_or_default());
    }
    out
}

pub async fn the_console_in_a_real_browser(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Browser").await;
    let d = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let c = browser(&d, profile.path()).await;

    c.goto(&app.url("/console/login")).await.unwrap();
    shot(&c, "login").await;
    sign_in(&c, &app, OWNER_EMAIL, OWNER_PASSWORD).await;
    wait_for_path(&c, "/console").await;
    wait_for_text(&c, "Overview").await;

    // A key, its secret read off the page, and the secret works against the API.
    c.goto(&app.url("/console/api-keys")).await.unwrap();
    fill(&c, "#name", "from the browser").await;
    click(&c, "input[name=scopes][value=contacts]").await;
    click(&c, "input[name=permissions][value=read]").await;
    click(&c, "form[action='/console/api-keys'] button[type=submit]").await;
    wait_for_text(&c, "Copy the secret now").await;
    let secret = c
        .find(Locator::Css("#secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(secret.starts_with("rk_live_"), "{secret}");
    json_of(app.get_as("/v1/contacts", &secret).await, 200).await;
    c.goto(&app.url("/console/api-keys")).await.unwrap();
    shot(&c, "api-keys").await;

    // An endpoint pointing at a local receiver, created in the console.
    let receiver = Receiver::start().await;
    c.goto(&app.url("/console/webhooks")).await.unwrap();
    fill(&c, "#url", &receiver.url("/console-hook")).await;
    fill(&c, "#description", "made in the browser").await;
    click(&c, "form[action='/console/webhooks'] button[type=submit]").await;
    wait_for_text(&c, "Endpoint created").await;
    let endpoint = path(&c).await;
    let eps = json_of(app.get_as("/v1/webhooks", &f.key).await, 200).await;
    let ep: Value = eps["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["description"] == "made in the browser")
        .cloned()
        .unwrap();
    let ep_id = ep["id"].as_str().unwrap().to_owned();
    let detail = app.url(&format!("/console/webhooks/{ep_id}"));
    assert!(endpoint.starts_with("/console/webhooks"), "{endpoint}");

    // A contact made through the API shows up as a delivery in the endpoint's log.
    json_of(
        app.post_as(
            "/v1/contacts",
            &f.key,
            &json!({ "external_key": "browser-1" }),
        )
        .await,
        201,
    )
    .await;
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let seen = eventually(Duration::from_secs(20), || async {
        c.goto(&detail).await.unwrap();
        let s = c.source().await.unwrap();
        s.contains("contact.created").then_some(())
    })
    .await;
    assert!(seen.is_some(), "the delivery appears in the log");
    shot(&c, "endpoint").await;
    // The endpoint list shows its success rate over the last 24 hours.
    c.goto(&app.url("/console/webhooks")).await.unwrap();
    let row = c
        .find(Locator::XPath(&format!(
            "//tr[td/a[contains(@href, '{ep_id}')]]"
        )))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(row.contains("100.0 % of 1"), "{row}");
    shot(&c, "webhooks").await;
    c.goto(&detail).await.unwrap();

    // Resend it from the log: the receiver gets the same event (same webhook-id) again.
    let sent = receiver.hits().len();
    click(&c, "form[action$='/resend'] button[type=submit]").await;
    wait_for_text(&c, "Resend queued").await;
    let again = receiver.wait_for(sent + 1, Duration::from_secs(20)).await;
    assert_eq!(
        again[sent].header("webhook-id"),
        again[sent - 1].header("webhook-id")
    );

    // The receiver fails: with no retries left the delivery dead-letters; fixed, the
    // replay from the console reaches it.
    json_of(
        app.req(
            reqwest::Method::PATCH,
            &format!("/v1/webhooks/{ep_id}"),
            &f.key,
        )
        .json(&json!({ "max_retries": 0 }))
        .send()
        .await
        .unwrap(),
        200,
    )
    .await;
    receiver.set_default(Reply::status(500));
    let before = receiver.hits().len();
    json_of(
        app.post_as(
            "/v1/contacts",
            &f.key,
            &json!({ "external_key": "browser-2" }),
        )
        .await,
        201,
    )
    .await;
    let dead = eventually(Duration::from_secs(30), || async {
        let n = count(
            &app,
            "SELECT COUNT(*) AS n FROM dead_letters WHERE endpoint_id = $1 AND status = 'open'",
            &[&ep_id],
        )
        .await;
        (n > 0).then_some(())
    })
    .await;
    assert!(dead.is_some(), "the failed delivery dead-letters");
    receiver.set_default(Reply::status(200));
    c.goto(&app.url("/console/dead-letters?status=open"))
        .await
        .unwrap();
    shot(&c, "dead-letters").await;
    click(&c, "form[action$='/replay'] button[type=submit]").await;
    wait_for_text(&c, "Replay queued").await;
    let got = eventually(Duration::from_secs(30), || async {
        let hits = receiver.hits();
        hits[before..]
            .iter()
            .any(|h| {
                h.json()["type"] == "contact.created"
                    && h.json()["data"]["external_key"] == "browser-2"
            })
            .then_some(())
            .filter(|_| hits.len() > before + 1)
    })
    .await;
    assert!(got.is_some(), "the replayed delivery reaches the receiver");

    // Invite a viewer; they set a password with the link and see no write control.
    c.goto(&app.url("/console/members")).await.unwrap();
    fill(&c, "#email", "viewer@browser.test").await;
    c.find(Locator::Css("#role"))
        .await
        .unwrap()
        .select_by_value("viewer")
        .await
        .unwrap();
    click(&c, "form[action='/console/members'] button[type=submit]").await;
    wait_for_text(&c, "set-password-url").await;
    let link = c
        .find(Locator::Css("#set-password-url"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    shot(&c, "members").await;
    c.goto(&app.url("/console")).await.unwrap();
    shot(&c, "overview").await;
    click(&c, "form[action='/console/logout'] button[type=submit]").await;
    wait_for_path(&c, "/console/login").await;
    let link_path = &link[link.find("/console/set-password").unwrap()..];
    c.goto(&app.url(link_path)).await.unwrap();
    fill(&c, "#password", "the viewer's own passphrase").await;
    click(&c, "button[type=submit]").await;
    wait_for_text(&c, "Your password is set").await;
    sign_in(
        &c,
        &app,
        "viewer@browser.test",
        "the viewer's own passphrase",
    )
    .await;
    wait_for_path(&c, "/console").await;
    for page in [
        "/console",
        "/console/webhooks",
        "/console/dead-letters",
        "/console/contacts",
    ] {
        c.goto(&app.url(page)).await.unwrap();
        for action in post_forms(&c).await {
            assert!(
                action == "/console/environment" || action == "/console/logout",
                "{page}: the viewer sees a write control posting to {action}"
            );
        }
    }
    c.goto(&detail).await.unwrap();
    assert!(post_forms(&c).await.iter().all(|a| !a.contains("webhooks")));

    // Sign out: back at the sign-in page, and the session is dead server-side.
    click(&c, "form[action='/console/logout'] button[type=submit]").await;
    wait_for_path(&c, "/console/login").await;
    c.goto(&app.url("/console/webhooks")).await.unwrap();
    assert_eq!(path(&c).await, "/console/login");
    assert_eq!(
        count(&app, "SELECT COUNT(*) AS n FROM console_sessions WHERE revoked_at IS NULL AND user_id IN (SELECT id FROM users WHERE email = $1)", &["viewer@browser.test"]).await,
        0
    );
    c.close().await.unwrap();
}
