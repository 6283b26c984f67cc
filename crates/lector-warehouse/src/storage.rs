//! The warehouse's files behind `object_store`: a local folder now, an S3-compatible bucket by
//! the same interface later. Every failure names the file it concerns.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::object_store::local::LocalFileSystem;
use datafusion::object_store::path::Path;
use datafusion::object_store::{self, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use futures_util::TryStreamExt;
use serde::de::DeserializeOwned;

use crate::error::{Result, WarehouseError};

/// The URL the warehouse's store is registered under in DataFusion sessions: a scheme of its
/// own, so a query plan can reach these files and nothing else.
const STORE_URL: &str = "lector-warehouse://root";

pub struct Storage {
    store: Arc<dyn ObjectStore>,
    url: ObjectStoreUrl,
    root: PathBuf,
}

/// Whether a create-if-absent put found the name taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    Yes,
    AlreadyExists,
}

impl Storage {
    /// The folder `root` (created if missing) as an object store.
    pub fn local(root: &FsPath) -> Result<Storage> {
        let shown = root.display().to_string();
        std::fs::create_dir_all(root)
            .map_err(|e| WarehouseError::storage(&shown, object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) }))?;
        // Empty partition folders left by deleted files are removed with them.
        let store = LocalFileSystem::new_with_prefix(root).map_err(|e| WarehouseError::storage(&shown, e))?.with_automatic_cleanup(true);
        let url = ObjectStoreUrl::parse(STORE_URL)?;
        Ok(Storage { store: Arc::new(store), url, root: root.to_path_buf() })
    }

    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub fn url(&self) -> &ObjectStoreUrl {
        &self.url
    }

    /// The file as a person finds it (for messages).
    pub fn shown(&self, path: &str) -> String {
        self.root.join(path).display().to_string()
    }

    fn fail(&self, path: &Path, e: object_store::Error) -> WarehouseError {
        WarehouseError::storage(self.shown(path.as_ref()), e)
    }

    pub async fn put(&self, path: &Path, bytes: Vec<u8>) -> Result<()> {
        self.store.put(path, PutPayload::from(bytes)).await.map(drop).map_err(|e| self.fail(path, e))
    }

    /// Writes `bytes` only if nothing is stored under `path` yet.
    pub async fn put_new(&self, path: &Path, bytes: Vec<u8>) -> Result<Created> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(path, PutPayload::from(bytes), opts).await {
            Ok(_) => Ok(Created::Yes),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::AlreadyExists),
            Err(e) => Err(self.fail(path, e)),
        }
    }

    pub async fn get_json<T: DeserializeOwned>(&self, path: &Path) -> Result<T> {
        let bytes = self.store.get(path).await.map_err(|e| self.fail(path, e))?.bytes().await.map_err(|e| self.fail(path, e))?;
        serde_json::from_slice(&bytes).map_err(|source| WarehouseError::Record { path: self.shown(path.as_ref()), source })
    }

    pub async fn head(&self, path: &Path) -> Result<ObjectMeta> {
        self.store.head(path).await.map_err(|e| self.fail(path, e))
    }

    /// Deletes `path`; a file already gone is fine.
    pub async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.fail(path, e)),
        }
    }

    /// Every file under `prefix` (the whole warehouse for `None`).
    pub async fn list(&self, prefix: Option<&Path>) -> Result<Vec<ObjectMeta>> {
        let shown = prefix.map(|p| p.to_string()).unwrap_or_default();
        self.store.list(prefix).try_collect().await.map_err(|e| WarehouseError::storage(self.shown(&shown), e))
    }

    /// Every row of a (small) Parquet file; a damaged file is a [`WarehouseError::Corrupt`] naming it.
    pub async fn read_parquet(&self, file: &str) -> Result<Vec<RecordBatch>> {
        let path = Path::from(file);
        let bytes = self.store.get(&path).await.map_err(|e| self.fail(&path, e))?.bytes().await.map_err(|e| self.fail(&path, e))?;
        let corrupt = |detail: String| WarehouseError::Corrupt { path: self.shown(file), detail };
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).and_then(|b| b.build()).map_err(|e| corrupt(e.to_string()))?;
        reader.collect::<Result<Vec<_>, _>>().map_err(|e| corrupt(e.to_string()))
    }

    /// Reads a Parquet file's footer (schema and row groups): what a truncated or overwritten
    /// file fails first.
    pub async fn check_parquet(&self, file: &str) -> Result<()> {
        let meta = self.head(&Path::from(file)).await?;
        DFParquetMetadata::new(self.store.as_ref(), &meta)
            .fetch_metadata()
            .await
            .map(drop)
            .map_err(|e| WarehouseError::Corrupt { path: self.shown(file), detail: e.strip_backtrace() })
    }
}
