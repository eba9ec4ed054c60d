//! `PgStore`: a content-addressed store in `cellar_blobs` (STORE-1..4 over PostgreSQL).
//!
//! Every blob is one row `(store, hash, data)`; `store` namespaces the table so several stores
//! share one database. `get` verifies the bytes against the hash on every read (STORE-2):
//! whatever happened to the row (a side-door `UPDATE`, a restored backup of another database),
//! bytes that do not hash to their name are `Corrupt`, never data. `post` is one
//! `INSERT … ON CONFLICT` that also rewrites a row whose bytes differ from the posted ones, so
//! posting a blob again repairs a damaged copy (STORE-1).
//!
//! Under a volume's Contract mode held through `PgModeLock`, `delete` runs in a transaction that
//! first checks the fence (`specs/volume.md` §6.1).

use super::{PgError, PgFence, PgPool};
use crate::Hash;
use crate::storage::hash::HASH_SIZE_BYTES;
use crate::storage::store::{
    BLOB_SIZE_MAX_BYTES_DEFAULT, HashRange, Store, StoreError, check_blob_size, verify_blob,
};
use crate::storage::volume::Mode;
use postgres::types::ToSql;
use std::ops::Bound;
use std::sync::{Arc, OnceLock};

/// A content-addressed store in PostgreSQL (see the module docs).
#[derive(Debug)]
pub struct PgStore {
    pool: Arc<PgPool>,
    namespace: String,
    max_blob_size_bytes: usize,
    fence: OnceLock<Arc<PgFence>>,
}

fn q(op: &'static str) -> impl Fn(postgres::Error) -> PgError {
    move |e| PgError::from_driver(op, &e)
}

impl PgStore {
    /// The store `namespace` in the database of `pool`, with the default 4 MiB blob limit.
    pub fn new(pool: Arc<PgPool>, namespace: &str) -> Self {
        Self {
            pool,
            namespace: namespace.to_owned(),
            max_blob_size_bytes: BLOB_SIZE_MAX_BYTES_DEFAULT,
            fence: OnceLock::new(),
        }
    }

    /// Sets the largest blob `post` accepts (default 4 MiB, STORE-3).
    #[must_use]
    pub fn with_max_blob_size(mut self, max_blob_size_bytes: usize) -> Self {
        self.max_blob_size_bytes = max_blob_size_bytes;
        self
    }

    /// Makes every delete check `fence` while this process holds Contract on the fence's
    /// volume. Returns false if a fence was already attached.
    pub fn attach_fence(&self, fence: Arc<PgFence>) -> bool {
        self.fence.set(fence).is_ok()
    }

    /// The namespace (the `store` column).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

fn hash_of_row(row: &postgres::Row) -> Result<Hash, StoreError> {
    let bytes: Vec<u8> = row.try_get(0).map_err(q("store list"))?;
    let arr: [u8; HASH_SIZE_BYTES] =
        bytes.as_slice().try_into().map_err(|_| StoreError::Corrupt {
            hash: Hash([0; HASH_SIZE_BYTES]),
            detail: format!("a stored hash is {} bytes, not {HASH_SIZE_BYTES}", bytes.len()),
        })?;
    Ok(Hash(arr))
}

impl Store for PgStore {
    fn max_blob_size_bytes(&self) -> usize {
        self.max_blob_size_bytes
    }

    fn post(&self, data: &[u8]) -> Result<Hash, StoreError> {
        check_blob_size(data.len(), self.max_blob_size_bytes)?;
        let hash = Hash::of(data);
        let key: &[u8] = &hash.0;
        self.pool.with(|c| {
            c.execute(
                "INSERT INTO cellar_blobs (store, hash, data) VALUES ($1, $2, $3)
                 ON CONFLICT (store, hash) DO UPDATE SET data = EXCLUDED.data
                 WHERE cellar_blobs.data <> EXCLUDED.data",
                &[&self.namespace, &key, &data],
            )
            .map_err(q("store post"))
        })?;
        Ok(hash)
    }

    fn get(&self, hash: &Hash) -> Result<Vec<u8>, StoreError> {
        let key: &[u8] = &hash.0;
        let row = self.pool.with(|c| {
            c.query_opt(
                "SELECT data FROM cellar_blobs WHERE store = $1 AND hash = $2",
                &[&self.namespace, &key],
            )
            .map_err(q("store get"))
        })?;
        let row = row.ok_or(StoreError::NotFound(*hash))?;
        let data: Vec<u8> = row.try_get(0).map_err(q("store get"))?;
        verify_blob(hash, data)
    }

    fn exists(&self, hash: &Hash) -> Result<bool, StoreError> {
        let key: &[u8] = &hash.0;
        let row = self.pool.with(|c| {
            c.query_opt(
                "SELECT 1 FROM cellar_blobs WHERE store = $1 AND hash = $2",
                &[&self.namespace, &key],
            )
            .map_err(q("store exists"))
        })?;
        Ok(row.is_some())
    }

    fn delete(&self, hash: &Hash) -> Result<(), StoreError> {
        let key: &[u8] = &hash.0;
        let sql = "DELETE FROM cellar_blobs WHERE store = $1 AND hash = $2";
        let fence = self.fence.get().filter(|f| f.token(Mode::Contract).is_some());
        self.pool.with(|c| match fence {
            None => c.execute(sql, &[&self.namespace, &key]).map(|_| ()).map_err(q("store delete")),
            Some(fence) => {
                let op = q("store delete (fenced)");
                let mut tx = c.transaction().map_err(&op)?;
                fence.check(&mut tx, Mode::Contract)?;
                tx.execute(sql, &[&self.namespace, &key]).map_err(&op)?;
                tx.commit().map_err(&op)
            }
        })?;
        Ok(())
    }

    fn list(&self, range: HashRange, limit: usize) -> Result<Vec<Hash>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let bound = |b: Bound<Hash>| match b {
            Bound::Included(h) => Some((true, h.0.to_vec())),
            Bound::Excluded(h) => Some((false, h.0.to_vec())),
            Bound::Unbounded => None,
        };
        let (lo, hi) = (bound(range.0), bound(range.1));
        let mut sql = String::from("SELECT hash FROM cellar_blobs WHERE store = $1");
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.namespace];
        if let Some((inclusive, h)) = &lo {
            params.push(h);
            sql.push_str(&format!(
                " AND hash {} ${}",
                if *inclusive { ">=" } else { ">" },
                params.len()
            ));
        }
        if let Some((inclusive, h)) = &hi {
            params.push(h);
            sql.push_str(&format!(
                " AND hash {} ${}",
                if *inclusive { "<=" } else { "<" },
                params.len()
            ));
        }
        params.push(&limit);
        sql.push_str(&format!(" ORDER BY hash LIMIT ${}", params.len()));
        let rows = self.pool.with(|c| c.query(&sql, &params).map_err(q("store list")))?;
        rows.iter().map(hash_of_row).collect()
    }
}
