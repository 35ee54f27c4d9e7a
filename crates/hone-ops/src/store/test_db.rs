//! A throwaway database on a PostgreSQL test server, for the PostgreSQL tests of this crate and
//! of the crates above it: `HONE_TEST_PG_URL` names a server the tests may create databases on
//! (`scripts/pg-test-cluster start DIR` prints one), each test gets a database of its own and
//! drops it afterwards. Without the variable the test is skipped, with the reason printed,
//! unless `HONE_REQUIRE_PG=1` (as CI sets), which makes it fail instead.

use std::sync::atomic::{AtomicU64, Ordering};

/// A database of its own on the test server, dropped (with FORCE) when this is.
pub struct TestDatabase {
    /// The server's URL as given (its own database), to create and drop others.
    pub admin_url: String,
    pub name: String,
    /// The URL of this database.
    pub url: String,
}

impl TestDatabase {
    /// `None` (with the reason printed) when no test server is configured; panics when one
    /// is required or cannot be reached.
    pub fn create(test: &str) -> Option<Self> {
        let admin_url = match std::env::var("HONE_TEST_PG_URL") {
            Ok(u) if !u.is_empty() => u,
            _ => {
                if std::env::var("HONE_REQUIRE_PG").as_deref() == Ok("1") {
                    panic!("{test}: HONE_REQUIRE_PG=1 but HONE_TEST_PG_URL is not set (scripts/pg-test-cluster start DIR prints one)");
                }
                eprintln!("{test}: skipped: HONE_TEST_PG_URL is not set (a PostgreSQL server to create test databases on; scripts/pg-test-cluster start DIR prints one)");
                return None;
            }
        };
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let name = format!(
            "hone_test_{}_{:x}_{}",
            std::process::id(),
            nanos,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("HONE_TEST_PG_URL: cannot connect: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the test database");
        let url = with_dbname(&admin_url, &name);
        Some(Self {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// `url` with its database replaced by `db` (the query string kept).
pub fn with_dbname(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    format!("{scheme}://{authority}/{db}{query}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_is_replaced_and_the_query_kept() {
        assert_eq!(
            super::with_dbname("postgres://u:p@h:5/admin?sslmode=disable", "t1"),
            "postgres://u:p@h:5/t1?sslmode=disable"
        );
        assert_eq!(
            super::with_dbname("postgresql://h", "t2"),
            "postgresql://h/t2"
        );
    }
}
