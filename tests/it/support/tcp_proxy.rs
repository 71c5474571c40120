//! A loopback TCP proxy under the test's control, between calsync and a server
//! (the simulator or a database): it refuses or forwards, cuts every connection
//! at once or when the client sends given bytes, and counts what it relays. The
//! fault suite uses it to drop database connections mid-pass and to tell how much
//! of a body calsync read.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::db::{TestBackend, TestDb};

/// It either refuses (accepts and closes at once) or forwards; it can cut every
/// open connection at once, or cut them all as soon as the client sends a given
/// byte string; it counts the bytes it passed from the server to the client.
pub struct TcpProxy {
    pub addr: SocketAddr,
    shared: Arc<ProxyShared>,
}

struct ProxyShared {
    upstream: SocketAddr,
    forwarding: AtomicBool,
    /// Cancelled to cut every connection opened under it; replaced after each cut.
    generation: Mutex<CancellationToken>,
    trigger: Mutex<Option<Vec<u8>>>,
    fired: AtomicBool,
    accepted: AtomicU64,
    /// Connections relayed right now.
    open: AtomicU64,
    downstream_bytes: AtomicU64,
}

impl ProxyShared {
    fn cut_all(&self) {
        let mut generation = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        generation.cancel();
        *generation = CancellationToken::new();
    }

    /// Whether `window` holds the armed trigger; disarms and cuts if so.
    fn check_trigger(&self, window: &[u8]) -> bool {
        let mut trigger = self.trigger.lock().unwrap_or_else(|p| p.into_inner());
        let hit = trigger
            .as_deref()
            .is_some_and(|t| window.windows(t.len()).any(|w| w == t));
        if hit {
            *trigger = None;
            self.fired.store(true, Ordering::SeqCst);
            drop(trigger);
            self.cut_all();
        }
        hit
    }
}

impl TcpProxy {
    /// Starts forwarding to `upstream`, or refusing until [`Self::set_forwarding`].
    pub async fn start(upstream: SocketAddr, forwarding: bool) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the TCP proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(ProxyShared {
            upstream,
            forwarding: AtomicBool::new(forwarding),
            generation: Mutex::new(CancellationToken::new()),
            trigger: Mutex::new(None),
            fired: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            open: AtomicU64::new(0),
            downstream_bytes: AtomicU64::new(0),
        });
        let accepting = shared.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                accepting.accepted.fetch_add(1, Ordering::SeqCst);
                if !accepting.forwarding.load(Ordering::SeqCst) {
                    // Refused: the peer sees the connection closed at once.
                    drop(client);
                    continue;
                }
                tokio::spawn(relay(accepting.clone(), client));
            }
        });
        TcpProxy { addr, shared }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of `db` reached through this proxy (started on
    /// [`TestDb::server_addr`]), with TLS off so the proxy sees the statements in
    /// clear.
    pub fn database_url(&self, db: &TestDb) -> String {
        let mut url = url::Url::parse(&db.url).expect("test database URL");
        url.set_port(Some(self.addr.port()))
            .expect("a server URL has a port");
        match db.backend {
            TestBackend::Postgres => url.set_query(Some("sslmode=disable")),
            TestBackend::MariaDb => url.set_query(Some("ssl-mode=DISABLED")),
            TestBackend::Sqlite => unreachable!("SQLite has no server"),
        }
        url.to_string()
    }

    pub fn set_forwarding(&self, on: bool) {
        self.shared.forwarding.store(on, Ordering::SeqCst);
    }

    /// Cuts every open connection now.
    pub fn cut_all(&self) {
        self.shared.cut_all();
    }

    /// Cuts every connection the moment the client sends `bytes` (once).
    pub fn cut_when_client_sends(&self, bytes: &[u8]) {
        *self
            .shared
            .trigger
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(bytes.to_vec());
    }

    /// Whether the armed trigger has cut the connections.
    pub fn fired(&self) -> bool {
        self.shared.fired.load(Ordering::SeqCst)
    }

    /// Connections accepted so far, refused ones included.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections relayed right now.
    pub fn open(&self) -> u64 {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Bytes passed from the server to the client so far.
    pub fn downstream_bytes(&self) -> u64 {
        self.shared.downstream_bytes.load(Ordering::SeqCst)
    }
}

async fn relay(shared: Arc<ProxyShared>, client: TcpStream) {
    let cut = shared
        .generation
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    shared.open.fetch_add(1, Ordering::SeqCst);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        // The end of the previous read, so a trigger split across reads is seen.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut window = std::mem::take(&mut tail);
            window.extend_from_slice(&buf[..n]);
            if shared.check_trigger(&window) {
                // Never forwarded: the server sees the connection end instead.
                return;
            }
            tail = window[window.len().saturating_sub(64)..].to_vec();
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
            shared
                .downstream_bytes
                .fetch_add(n as u64, Ordering::SeqCst);
        }
        let _ = client_write.shutdown().await;
    };
    tokio::select! {
        _ = cut.cancelled() => {}
        _ = async { tokio::join!(up, down) } => {}
    }
    shared.open.fetch_sub(1, Ordering::SeqCst);
}
