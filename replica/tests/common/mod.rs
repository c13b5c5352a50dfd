//! Helpers shared by the integration tests: an in-process replica on a free port and a minimal
//! HTTP/1 client on hyper's connection API (one TCP connection per `Client`).

#![allow(dead_code)] // Each test binary uses a different subset.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use ringlb_replica::{serve, Config};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A replica served by `serve` in this process.
pub struct TestReplica {
    pub addr: SocketAddr,
    /// Send (or drop) to shut the replica down.
    pub shutdown: oneshot::Sender<()>,
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Binds 127.0.0.1:0 and serves a replica with the given ID and name.
pub async fn start(id: u32, name: &str) -> TestReplica {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, rx) = oneshot::channel::<()>();
    let config = Config {
        id,
        name: name.to_owned(),
        exit_on_stdin_eof: false,
    };
    let task = tokio::spawn(serve(listener, config, async {
        let _ = rx.await;
    }));
    TestReplica {
        addr,
        shutdown,
        task,
    }
}

/// One answer, fully read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// One kept-alive HTTP/1.1 connection.
pub struct Client {
    sender: SendRequest<Empty<Bytes>>,
    connection: JoinHandle<hyper::Result<()>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        Client {
            sender,
            connection: tokio::spawn(connection),
        }
    }

    pub async fn request(&mut self, method: Method, uri: &str) -> Answer {
        self.sender.ready().await.unwrap();
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, "replica.test")
            .body(Empty::new())
            .unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    pub async fn get(&mut self, uri: &str) -> Answer {
        self.request(Method::GET, uri).await
    }

    /// Whether the server has closed this connection.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Waits until the server closes the connection.
    pub async fn closed(self) {
        let _ = self.connection.await;
    }
}

/// GET on a fresh connection.
pub async fn get(addr: SocketAddr, uri: &str) -> Answer {
    Client::connect(addr).await.get(uri).await
}
