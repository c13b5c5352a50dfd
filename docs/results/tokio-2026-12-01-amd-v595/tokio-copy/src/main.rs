//! A plain L4 proxy for comparison: one current-thread tokio runtime, and per connection a
//! connect to the one backend and `copy_bidirectional`. No request line, no ring, no timeouts.
//!
//!     tokio-copy 127.0.0.1:23126 127.0.0.1:24081
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (listen, backend) = (args[1].clone(), args[2].clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let l = TcpListener::bind(&listen).await.unwrap();
        loop {
            let (mut c, _) = l.accept().await.unwrap();
            let b = backend.clone();
            tokio::spawn(async move {
                let _ = c.set_nodelay(true);
                let Ok(mut s) = TcpStream::connect(&b).await else {
                    return;
                };
                let _ = s.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut c, &mut s).await;
            });
        }
    });
}
