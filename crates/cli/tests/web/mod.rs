//! A minimal browser for the process-level tests: keeps cookies, sends forms the way a
//! browser does (same-origin `Origin`, the page's CSRF field) and does not follow
//! redirects, so each step's answer can be checked.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

pub struct Browser {
    client: reqwest::blocking::Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            client: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookies: BTreeMap::new(),
        }
    }

    pub fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req)
    }

    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("origin", &self.base)
            .form(form);
        self.send(req)
    }

    /// The CSRF token of the forms on the page at `path` (the page also sets the cookie
    /// it is bound to on a first visit).
    pub fn csrf(&mut self, path: &str) -> String {
        let page = self.get(path);
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        csrf_of(&page.body)
    }

    /// Signs up, then logs in (sign-up alone need not start a session).
    pub fn sign_up_and_log_in(&mut self, email: &str, password: &str) {
        let csrf = self.csrf("/signup");
        let fields = [
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
        ];
        let signed_up = self.post("/signup", &fields);
        assert_eq!(signed_up.status, 303, "sign-up: {}", signed_up.body);
        let logged_in = self.post("/login", &fields);
        assert_eq!(logged_in.status, 303, "log-in: {}", logged_in.body);
        let dashboard = self.get("/dashboard");
        assert_eq!(dashboard.status, 200, "not logged in: {}", dashboard.body);
    }

    /// Opens a claim link and submits the verification code; returns the answer.
    pub fn claim(&mut self, claim_url: &str, code: &str) -> Page {
        let path = claim_url
            .strip_prefix(&self.base)
            .unwrap_or_else(|| panic!("{claim_url} is not on {}", self.base))
            .to_owned();
        let page = self.get(&path);
        assert_eq!(page.status, 200, "claim page: {}", page.body);
        let csrf = csrf_of(&page.body);
        self.post(&path, &[("csrf", &csrf), ("code", code)])
    }

    fn send(&mut self, req: reqwest::blocking::RequestBuilder) -> Page {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut req = req.header("accept", "text/html");
        if !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        let r = req.send().unwrap();
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (name, value) = v.split(';').next().unwrap().split_once('=').unwrap();
            if value.is_empty() || v.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        Page {
            status,
            location,
            body: r.text().unwrap(),
        }
    }
}

pub fn csrf_of(body: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = body
        .find(marker)
        .unwrap_or_else(|| panic!("no CSRF field in {body}"))
        + marker.len();
    let len = body[start..].find('"').unwrap();
    body[start..start + len].to_owned()
}
