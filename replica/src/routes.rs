//! The replica's endpoints: one `match` on (method, path).
//!
//! | request                         | answer |
//! |---------------------------------|--------|
//! | `GET /home`                     | 200 `{"message":"Hello from Server: <id>","status":"successful"}` |
//! | `GET /heartbeat`                | 200, empty body (`Content-Length: 0`) |
//! | other method on those two paths | 405 with `Allow: GET, HEAD` and the failure envelope |
//! | any other path, any method      | 400 `{"message":"<Error> '/<path>' endpoint does not exist in server replicas","status":"failure"}` |
//!
//! `HEAD` is answered like `GET` (hyper drops the body), as HTTP requires of any server that
//! serves `GET`. A wrong method on a known path is a 405 rather than the "does not exist" 400,
//! because the endpoint does exist; that is what HTTP clients, curl users and the control
//! plane's own API (also 405) lead an operator to expect. The path in the 400 message is the
//! request path without its query string, as received (no percent-decoding).

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::service::Service;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;

/// The response type of every endpoint: a body that is already complete, so hyper writes it with
/// a `Content-Length` in one go and never has to poll a stream.
pub(crate) type ReplicaResponse = Response<Full<Bytes>>;

/// Carries the replica's name to operators; the `/home` body must stay exactly the assignment's.
const SERVER_NAME_HEADER: HeaderName = HeaderName::from_static("x-server-name");

/// The assignment's JSON envelope. A struct (rather than `json!`) fixes the key order, and
/// serde_json escapes whatever bytes a client put into a path.
#[derive(Serialize)]
struct Envelope<'a> {
    message: &'a str,
    status: &'a str,
}

fn envelope(message: &str, status: &str) -> Bytes {
    // Serializing two `&str` fields into a Vec cannot fail.
    let json = serde_json::to_vec(&Envelope { message, status })
        .expect("serializing a pair of strings is infallible");
    Bytes::from(json)
}

/// The body of the 400 answer for an unknown `path`.
pub(crate) fn unknown_path_body(path: &str) -> Bytes {
    envelope(
        &format!("<Error> '{path}' endpoint does not exist in server replicas"),
        "failure",
    )
}

fn wrong_method_body(method: &Method, path: &str) -> Bytes {
    envelope(
        &format!("<Error> method {method} is not allowed on '{path}'; use GET"),
        "failure",
    )
}

/// Everything a response needs that does not depend on the request, built once per server.
#[derive(Debug)]
pub(crate) struct Routes {
    /// The complete `/home` body; cloning `Bytes` only bumps a reference count.
    home_body: Bytes,
    /// `None` when the configured name cannot be a header value (e.g. it holds a newline); the
    /// body still identifies the server by ID, so the header is simply left out.
    server_name: Option<HeaderValue>,
}

impl Routes {
    pub(crate) fn new(id: u32, name: &str) -> Self {
        let server_name = match HeaderValue::from_str(name) {
            Ok(value) => Some(value),
            Err(_) => {
                tracing::warn!(
                    name,
                    "server name is not a valid HTTP header value; X-Server-Name will be omitted"
                );
                None
            }
        };
        Self {
            home_body: envelope(&format!("Hello from Server: {id}"), "successful"),
            server_name,
        }
    }

    /// Answers one request. Only the method and the URI are looked at; a request body, if any,
    /// is left for hyper to drain or to close the connection over.
    pub(crate) fn respond<B>(&self, req: &Request<B>) -> ReplicaResponse {
        let path = req.uri().path();
        let known = matches!(path, "/home" | "/heartbeat");
        let readable = matches!(*req.method(), Method::GET | Method::HEAD);
        let mut response = match (path, readable) {
            ("/home", true) => json(StatusCode::OK, self.home_body.clone()),
            ("/heartbeat", true) => Response::new(Full::new(Bytes::new())),
            _ if known => {
                let mut response = json(
                    StatusCode::METHOD_NOT_ALLOWED,
                    wrong_method_body(req.method(), path),
                );
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
                response
            }
            _ => json(StatusCode::BAD_REQUEST, unknown_path_body(path)),
        };
        if let Some(name) = &self.server_name {
            response
                .headers_mut()
                .insert(SERVER_NAME_HEADER, name.clone());
        }
        response
    }
}

fn json(status: StatusCode, body: Bytes) -> ReplicaResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The hyper service of one replica, cloned into every connection.
///
/// A hand-written `Service` with a `Ready` future instead of `service_fn` with an `async` block:
/// every answer is known without awaiting anything, so no future is boxed or polled twice.
#[derive(Debug, Clone)]
pub(crate) struct ReplicaService(pub(crate) Arc<Routes>);

impl<B> Service<Request<B>> for ReplicaService {
    type Response = ReplicaResponse;
    type Error = Infallible;
    type Future = Ready<Result<ReplicaResponse, Infallible>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        ready(Ok(self.0.respond(&req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn answer(method: Method, uri: &str) -> (StatusCode, hyper::HeaderMap, String) {
        let routes = Routes::new(3, "Server-3");
        let req = Request::builder().method(method).uri(uri).body(()).unwrap();
        let response = routes.respond(&req);
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn home_names_the_server() {
        let (status, headers, body) = answer(Method::GET, "/home").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            r#"{"message":"Hello from Server: 3","status":"successful"}"#
        );
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        assert_eq!(headers["x-server-name"], "Server-3");
    }

    #[tokio::test]
    async fn query_string_does_not_change_home() {
        let (status, _, _) = answer(Method::GET, "/home?rid=123456").await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn wrong_method_on_a_known_path_is_405() {
        let (status, headers, body) = answer(Method::POST, "/heartbeat").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[ALLOW], "GET, HEAD");
        assert_eq!(
            body,
            r#"{"message":"<Error> method POST is not allowed on '/heartbeat'; use GET","status":"failure"}"#
        );
    }

    #[tokio::test]
    async fn any_method_on_an_unknown_path_is_400() {
        let (status, _, body) = answer(Method::DELETE, "/rm").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            r#"{"message":"<Error> '/rm' endpoint does not exist in server replicas","status":"failure"}"#
        );
    }

    #[test]
    fn odd_characters_in_a_path_stay_valid_json() {
        let path = "/a\"b\\c\u{1}";
        let body = unknown_path_body(path);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value["message"],
            format!("<Error> '{path}' endpoint does not exist in server replicas")
        );
        assert_eq!(value["status"], "failure");
    }

    #[test]
    fn a_name_that_cannot_be_a_header_is_left_out() {
        let routes = Routes::new(1, "bad\nname");
        let req = Request::get("/home").body(()).unwrap();
        assert!(!routes.respond(&req).headers().contains_key("x-server-name"));
    }
}
