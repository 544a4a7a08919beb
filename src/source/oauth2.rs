//! OAuth2 client credentials (RFC 6749 section 4.4) for `http:` sources and probe modules:
//! a token asked of `token_url` with the client's id and secret, kept until it expires (10 s
//! early, as Go's oauth2 package does) and asked again when it has expired or the server
//! answered 401 to it.
//!
//! The token request goes through the source's own client (its TLS settings, proxy and
//! timeout). The client authenticates with HTTP Basic (the method RFC 6749 section 2.3.1 says
//! every server supports, and the one Go's oauth2 package tries first), the secret read from
//! its file for every token so a rotated secret takes effect. Concurrent fetches share one
//! token and one request for it (a probe module's many targets ask once).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{resolve_path, OAuth2Config};
use crate::selfmetrics::SourceErrorReason;

use super::fetch::{fail, redacted, FetchError};

/// How long before its expiry a token is no longer used.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

/// Largest token response read.
const MAX_TOKEN_RESPONSE: usize = 1 << 20;

/// A client's credentials and its current token.
pub struct OAuth2 {
    client_id: String,
    secret_file: PathBuf,
    token_url: reqwest::Url,
    form: Vec<(String, String)>,
    token: tokio::sync::Mutex<Option<Token>>,
}

/// A token and when it stops being used.
#[derive(Clone)]
struct Token {
    access: String,
    until: Option<Instant>,
}

impl OAuth2 {
    /// From the validated config.
    pub fn new(c: &OAuth2Config, base_dir: &Path) -> anyhow::Result<OAuth2> {
        let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
        if !c.scopes.is_empty() {
            form.push(("scope".to_owned(), c.scopes.join(" ")));
        }
        form.extend(
            c.endpoint_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        Ok(OAuth2 {
            client_id: c.client_id.clone(),
            secret_file: resolve_path(
                base_dir,
                c.client_secret_file
                    .as_deref()
                    .ok_or_else(|| anyhow::anyhow!("oauth2 needs client_secret_file"))?,
            ),
            token_url: reqwest::Url::parse(&c.token_url)?,
            form,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// A token that has not expired: the one kept, or a new one. `refused` is a token the
    /// server answered 401 to: it is not given again (unless another fetch already replaced
    /// it, then the replacement is).
    pub async fn token(
        &self,
        client: &reqwest::Client,
        refused: Option<&str>,
    ) -> Result<String, FetchError> {
        let mut kept = self.token.lock().await;
        if let Some(t) = kept.as_ref() {
            let fresh = t.until.is_none_or(|until| Instant::now() < until);
            if fresh && refused != Some(t.access.as_str()) {
                return Ok(t.access.clone());
            }
        }
        *kept = None;
        let token = self.request(client).await?;
        *kept = Some(token.clone());
        Ok(token.access)
    }

    async fn request(&self, client: &reqwest::Client) -> Result<Token, FetchError> {
        let secret = super::fetch::read_secret(&self.secret_file)?;
        let shown = redacted(&self.token_url);
        let asked = Instant::now();
        let response = client
            .post(self.token_url.clone())
            .basic_auth(form_encoded(&self.client_id), Some(form_encoded(&secret)))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&self.form)
            .send()
            .await
            .map_err(|e| {
                let mut failure = super::fetch::request_failure(&e, &self.token_url);
                failure.message = format!("OAuth2 token request: {}", failure.message);
                failure
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            fail(
                SourceErrorReason::Read,
                format!("OAuth2 token response from {shown}: {e}"),
            )
        })?;
        let body = &body[..body.len().min(MAX_TOKEN_RESPONSE)];
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        if !status.is_success() {
            // RFC 6749 section 5.2: `error` and `error_description` say why.
            let why = json
                .as_ref()
                .map(|j| {
                    [j.get("error"), j.get("error_description")]
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(": ")
                })
                .filter(|w| !w.is_empty())
                .map(|w| format!(" ({w})"))
                .unwrap_or_default();
            return Err(fail(
                SourceErrorReason::HttpStatus,
                format!("OAuth2 token endpoint {shown} answered HTTP {status}{why}"),
            ));
        }
        let parsed = json.as_ref().and_then(|j| {
            let access = j.get("access_token")?.as_str()?.to_owned();
            let expires_in = j.get("expires_in").and_then(|e| {
                e.as_f64()
                    .or_else(|| e.as_str().and_then(|s| s.trim().parse().ok()))
            });
            Some((access, expires_in))
        });
        let Some((access, expires_in)) = parsed.filter(|(a, _)| !a.is_empty()) else {
            return Err(fail(
                SourceErrorReason::Parse,
                format!("OAuth2 token response from {shown} has no access_token"),
            ));
        };
        let until = expires_in
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| asked + Duration::from_secs_f64(s.min(1e9)).saturating_sub(EXPIRY_MARGIN));
        Ok(Token { access, until })
    }
}

/// `text` as `application/x-www-form-urlencoded`, as RFC 6749 section 2.3.1 has the client id
/// and secret encoded before they go into the Basic header.
fn form_encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_form_encoded_for_the_basic_header() {
        assert_eq!(form_encoded("my client"), "my+client");
        assert_eq!(form_encoded("a:b/c"), "a%3Ab%2Fc");
        assert_eq!(form_encoded("plain-id_1.x"), "plain-id_1.x");
    }
}
