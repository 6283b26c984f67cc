//! Files uploaded for import: streamed to `DATA_DIR/imports/<token>-<name>` (the name sanitised,
//! never the user's path), found again by their random token, and turned into import jobs.

use crate::error::AppError;
use lector_domain::import::ImportOptions;
use lector_domain::Msg;
use lector_import::runner::JobSpec;
use lector_import::{Format, OpenOptions};
use lector_store::imports::NewImportJob;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// The largest file an import upload may carry.
pub const UPLOAD_LIMIT: usize = 200 * 1024 * 1024;

/// Hex digits in an upload token (128 random bits).
const TOKEN_LEN: usize = 32;

/// The message for an upload over [`UPLOAD_LIMIT`].
pub fn too_large() -> Msg {
    Msg::new(
        "文件过大：导入文件上限为 200 MiB，请拆分后再上传",
        "the file is too large: import files are limited to 200 MiB; split it and upload the parts",
    )
}

/// Where uploads are kept.
pub fn imports_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("imports")
}

/// A file name safe to keep: the last component of what the browser sent, letters (any script),
/// digits, `.`, `-` and `_` only, no leading dot, at most 80 characters.
pub fn sanitise(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .skip_while(|c| *c == '.')
        .take(80)
        .collect();
    if cleaned.chars().all(|c| c == '_' || c == '.') {
        "upload".to_string()
    } else {
        cleaned
    }
}

/// A saved upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub token: String,
    /// The sanitised original name (shown to users and used as the job's label).
    pub name: String,
    pub path: PathBuf,
}

/// Why an upload could not be saved.
#[derive(Debug)]
pub enum UploadError {
    TooLarge,
    Io(std::io::Error),
}

impl From<std::io::Error> for UploadError {
    fn from(e: std::io::Error) -> Self {
        UploadError::Io(e)
    }
}

/// Writes an upload as its chunks arrive, refusing more than [`UPLOAD_LIMIT`] bytes.
pub struct UploadWriter {
    upload: Upload,
    file: tokio::fs::File,
    written: usize,
}

impl UploadWriter {
    pub async fn create(data_dir: &Path, original_name: &str) -> Result<Self, UploadError> {
        let dir = imports_dir(data_dir);
        tokio::fs::create_dir_all(&dir).await?;
        let token = hex::encode(rand::random::<[u8; TOKEN_LEN / 2]>());
        let name = sanitise(original_name);
        let path = dir.join(format!("{token}-{name}"));
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&path).await?;
        Ok(Self { upload: Upload { token, name, path }, file, written: 0 })
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.written += chunk.len();
        if self.written > UPLOAD_LIMIT {
            return Err(UploadError::TooLarge);
        }
        self.file.write_all(chunk).await?;
        Ok(())
    }

    pub async fn finish(mut self) -> Result<Upload, UploadError> {
        self.file.flush().await?;
        Ok(self.upload)
    }

    /// Removes the partial file (after a refused or broken upload).
    pub async fn discard(self) {
        let path = self.upload.path.clone();
        drop(self.file);
        if let Err(e) = tokio::fs::remove_file(&path).await {
            tracing::warn!(error = %e, path = %path.display(), "removing a discarded upload failed");
        }
    }
}

/// The upload with `token`, if the token is well formed and the file is still there.
pub async fn find(data_dir: &Path, token: &str) -> Option<Upload> {
    if token.len() != TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return None;
    }
    let prefix = format!("{token}-");
    let mut entries = tokio::fs::read_dir(imports_dir(data_dir)).await.ok()?;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(name) = file_name.strip_prefix(&prefix) {
            return Some(Upload { token: token.to_string(), name: name.to_string(), path: entry.path() });
        }
    }
    None
}

/// Whether `path` is an upload kept under `data_dir` (read once, not re-readable on a schedule).
pub fn is_upload(data_dir: &Path, path: &Path) -> bool {
    path.starts_with(imports_dir(data_dir))
}

/// The stable code of a format (`csv`, `xlsx`, `koha` …).
pub fn format_code(f: Format) -> String {
    serde_json::to_value(f).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Reads a format code; blank or `auto` means "detect".
pub fn parse_format(code: &str) -> Result<Option<Format>, Msg> {
    let code = code.trim().to_lowercase();
    if code.is_empty() || code == "auto" {
        return Ok(None);
    }
    serde_json::from_value(serde_json::Value::String(code.clone())).map(Some).map_err(|_| {
        Msg::new(
            format!("未知的文件格式“{code}”，可选：csv、tsv、xlsx、xls、json、ndjson、koha、folio"),
            format!("unknown file format '{code}'; use csv, tsv, xlsx, xls, json, ndjson, koha or folio"),
        )
    })
}

/// The formats a user may pick (besides "detect").
pub const FORMATS: [Format; 8] =
    [Format::Csv, Format::Tsv, Format::Xlsx, Format::Xls, Format::Json, Format::Ndjson, Format::Koha, Format::Folio];

/// Reads the first rows of an upload on a blocking thread; the error says why the file cannot be read.
pub async fn sample(path: &Path, format: Option<Format>, rows: usize) -> Result<lector_import::runner::Sample, Msg> {
    let path = path.to_path_buf();
    let open = OpenOptions { format, ..Default::default() };
    match tokio::task::spawn_blocking(move || lector_import::runner::sample(&path, &open, rows)).await {
        Ok(result) => result.map_err(|e| e.message),
        Err(e) => {
            tracing::error!(error = %e, "sampling an upload failed");
            Err(Msg::new("读取文件时出错，无法识别其内容", "reading the file failed; its content could not be recognised"))
        }
    }
}

/// The job that imports `upload` as `format` (detected) with the profile TOML (`None`: detect).
pub fn file_job(
    upload: &Upload,
    source: &str,
    format: Format,
    profile: Option<String>,
    options: ImportOptions,
    dry_run: bool,
) -> Result<NewImportJob, AppError> {
    let spec = JobSpec::File { path: upload.path.clone(), open: OpenOptions { format: Some(format), ..Default::default() }, profile };
    Ok(NewImportJob {
        source: source.trim().to_string(),
        format: format_code(format),
        label: upload.name.clone(),
        options,
        dry_run,
        spec: serde_json::to_value(spec).map_err(|e| AppError::Internal(format!("serialising a job spec: {e}")))?,
    })
}

/// Whether the profile reads and fits the file's headers and the store's configuration: the
/// outer error is the store's, the inner one the user's to fix.
pub async fn check_profile(state: &crate::AppState, toml: &str, headers: &[String]) -> Result<Result<(), Msg>, AppError> {
    let profile = match lector_import::mapping::Profile::from_toml(toml) {
        Ok(p) => p,
        Err(m) => return Ok(Err(m)),
    };
    let defs: Vec<_> = state.store.attribute_defs().await?.into_iter().map(|(_, d)| d).collect();
    let categories: Vec<String> = state.store.categories().await?.into_iter().filter(|c| c.active).map(|c| c.code).collect();
    Ok(profile.compile(headers, &defs, &categories).map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitise("C:\\Users\\张\\学生名单 2024.csv"), "学生名单_2024.csv");
        assert_eq!(sanitise("../../etc/passwd"), "passwd");
        assert_eq!(sanitise("..hidden"), "hidden");
        assert_eq!(sanitise("a b;c|d.xlsx"), "a_b_c_d.xlsx");
        assert_eq!(sanitise(""), "upload");
        assert_eq!(sanitise("/"), "upload");
        assert_eq!(sanitise(&"x".repeat(300)).chars().count(), 80);
    }

    #[test]
    fn formats_round_trip() {
        for f in FORMATS {
            assert_eq!(parse_format(&format_code(f)).unwrap(), Some(f));
        }
        assert_eq!(parse_format(" auto ").unwrap(), None);
        assert!(parse_format("docx").is_err());
    }

    #[tokio::test]
    async fn tokens_find_their_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = UploadWriter::create(dir.path(), "名单.csv").await.unwrap();
        w.write("姓名\n张三\n".as_bytes()).await.unwrap();
        let up = w.finish().await.unwrap();
        assert!(up.path.starts_with(imports_dir(dir.path())));
        assert!(is_upload(dir.path(), &up.path));
        assert_eq!(find(dir.path(), &up.token).await, Some(up.clone()));
        assert_eq!(find(dir.path(), "../imports").await, None);
        assert_eq!(find(dir.path(), &"0".repeat(TOKEN_LEN)).await, None);
        assert_eq!(std::fs::read_to_string(&up.path).unwrap(), "姓名\n张三\n");
    }
}
