//! Loopback helpers shared by the tests that start servers of their own.

/// A port that was free a moment ago on 127.0.0.1 (the OS picks it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binding a free port")
        .local_addr()
        .expect("address")
        .port()
}

/// How long a started server may take to answer (a slow CI machine included).
pub const SERVE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits until `url` answers at all (the server listens).
pub async fn wait_listening(http: &reqwest::Client, url: &str) {
    let deadline = std::time::Instant::now() + SERVE_WAIT;
    while http.get(url).send().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{url} never answered within {SERVE_WAIT:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until `url` answers 200 (e.g. `/readyz`).
pub async fn wait_ok(http: &reqwest::Client, url: &str) {
    let deadline = std::time::Instant::now() + SERVE_WAIT;
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url} never answered 200 within {SERVE_WAIT:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
