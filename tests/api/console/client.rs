//! A minimal browser for the console's HTML: a cookie jar of one cookie, the page's CSRF
//! token, and form posts from this server's origin.

use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};

use crate::helpers::*;

pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> String {
        let re = regex::Regex::new(r#"name="csrf" value="([^"]+)""#).unwrap();
        re.captures(&self.body)
            .map(|c| c[1].to_owned())
            .unwrap_or_default()
    }

    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub cookie: Option<String>,
    pub origin: String,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Browser<'a> {
        Browser {
            app,
            cookie: None,
            origin: format!("http://{}", app.addr),
        }
    }

    async fn read(&mut self, res: reqwest::Response) -> Page {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        if let Some(c) = headers.get(SET_COOKIE).and_then(|v| v.to_str().ok()) {
            let pair = c.split(';').next().unwrap_or("");
            let value = pair.split_once('=').map_or("", |(_, v)| v);
            self.cookie = (!value.is_empty()).then(|| pair.to_owned());
        }
        Page {
            status,
            headers,
            body: res.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let mut req = self.app.client.get(self.app.url(path));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let res = req.send().await.unwrap();
        self.read(res).await
    }

    /// Posts `fields` as a form with this origin and no CSRF token added.
    pub async fn post_raw(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Page {
        let body = {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in fields {
                s.append_pair(k, v);
            }
            s.finish()
        };
        let mut req = self
            .app
            .client
            .post(self.app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        let res = req.send().await.unwrap();
        self.read(res).await
    }

    /// Posts a form as the page would: same origin, the session's CSRF token, a fresh
    /// idempotency key.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get("/console").await.csrf();
        let idem = uuid::Uuid::now_v7().to_string();
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf", &csrf));
        all.push(("idempotency_key", &idem));
        let origin = self.origin.clone();
        self.post_raw(path, &all, Some(&origin)).await
    }

    /// Signs in; panics unless the console accepts.
    pub async fn sign_in(app: &'a TestApp, email: &str, password: &str) -> Browser<'a> {
        let mut b = Browser::new(app);
        let origin = b.origin.clone();
        let p = b
            .post_raw(
                "/console/login",
                &[("email", email), ("password", password)],
                Some(&origin),
            )
            .await;
        assert_eq!(p.status, 303, "{}", p.body);
        assert!(b.cookie.is_some());
        b
    }
}
