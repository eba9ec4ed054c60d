//! `PgPool`: a bounded set of connections to one PostgreSQL database, reconnecting lazily.
//!
//! A connection that broke (its session is gone) is dropped, never reused: the next operation
//! opens a fresh one. Nothing is retried here — an operation that met a broken connection
//! reports [`PgError::ConnectionLost`] and the caller decides (every operation of the backend is
//! one statement or one transaction, so there is no half-applied state to repair).

use super::PgError;
use super::schema;
use postgres::config::Host;
use postgres::{Client, Config, NoTls};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Connect timeout used when the URL does not set `connect_timeout`.
pub const CONNECT_TIMEOUT_S_DEFAULT: u64 = 10;
/// Default most connections one pool opens.
pub const POOL_CONNECTIONS_MAX_DEFAULT: usize = 4;
/// Hard cap on a pool's connections (a typical server allows 100 in all).
pub const POOL_CONNECTIONS_MAX_LIMIT: usize = 64;

#[derive(Default)]
struct State {
    idle: Vec<Client>,
    open: usize,
}

/// A bounded connection pool (see the module docs).
pub struct PgPool {
    config: Config,
    target: String,
    connections_max: usize,
    state: Mutex<State>,
    freed: Condvar,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgPool({}, max {})", self.target, self.connections_max)
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl PgPool {
    /// Parses `url`, connects once (so an unreachable server is reported now, not at the first
    /// operation) and creates or migrates Cellar's schema. `connections_max` is clamped to
    /// 1..=[`POOL_CONNECTIONS_MAX_LIMIT`].
    pub fn open(url: &str, connections_max: usize) -> Result<PgPool, PgError> {
        let mut config: Config = url.parse().map_err(|e| PgError::BadUrl(format!("{e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(CONNECT_TIMEOUT_S_DEFAULT));
        }
        if config.get_application_name().is_none() {
            config.application_name("cellar");
        }
        let target = describe(&config);
        let pool = PgPool {
            config,
            target,
            connections_max: connections_max.clamp(1, POOL_CONNECTIONS_MAX_LIMIT),
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
        };
        let mut client = pool.connect_dedicated()?;
        schema::migrate(&mut client)?;
        let mut st = lock(&pool.state);
        st.open = 1;
        st.idle.push(client);
        drop(st);
        Ok(pool)
    }

    /// `host:port` of the server (no user, no password), for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// A new connection that belongs to the caller alone (a mode lock keeps its session).
    pub fn connect_dedicated(&self) -> Result<Client, PgError> {
        self.config
            .connect(NoTls)
            .map_err(|e| PgError::Connect { target: self.target.clone(), detail: e.to_string() })
    }

    /// Runs `f` on a pooled connection. A connection that broke is dropped, not returned.
    pub fn with<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, PgError>) -> Result<T, PgError> {
        let mut client = self.acquire()?;
        let result = f(&mut client);
        let broken = client.is_closed() || matches!(result, Err(PgError::ConnectionLost { .. }));
        let mut st = lock(&self.state);
        if broken {
            st.open = st.open.saturating_sub(1);
        } else {
            st.idle.push(client);
        }
        drop(st);
        self.freed.notify_one();
        result
    }

    fn acquire(&self) -> Result<Client, PgError> {
        let mut st = lock(&self.state);
        loop {
            if let Some(c) = st.idle.pop() {
                return Ok(c);
            }
            if st.open < self.connections_max {
                st.open += 1;
                drop(st);
                return self.connect_dedicated().inspect_err(|_| {
                    let mut st = lock(&self.state);
                    st.open = st.open.saturating_sub(1);
                    drop(st);
                    self.freed.notify_one();
                });
            }
            st = match self.freed.wait(st) {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
    }
}

fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("(default database)");
    format!("{host}:{port}/{db}")
}
