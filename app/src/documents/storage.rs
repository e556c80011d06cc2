//! The object store behind documents: local files under the data directory by default, S3 (or
//! any S3-compatible server, path-style) when a bucket is configured.

use std::sync::Arc;

use anyhow::Context;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use secrecy::ExposeSecret;

use crate::config::Settings;

/// Builds the configured store; the local directory is created when missing.
pub fn from_settings(settings: &Settings) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let s3 = &settings.s3;
    if let Some(bucket) = &s3.bucket {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&s3.region)
            .with_virtual_hosted_style_request(!s3.path_style);
        if let Some(endpoint) = &s3.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let (Some(key), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
            builder = builder
                .with_access_key_id(key)
                .with_secret_access_key(secret.expose_secret());
        }
        return Ok(Arc::new(builder.build().context("invalid S3 settings")?));
    }
    let root = settings.data_dir.join("objects");
    std::fs::create_dir_all(&root)
        .with_context(|| format!("cannot create the object directory {}", root.display()))?;
    Ok(Arc::new(
        LocalFileSystem::new_with_prefix(&root)
            .with_context(|| format!("cannot use {} as the object store", root.display()))?,
    ))
}

#[cfg(test)]
mod tests {
    use object_store::PutPayload;
    use object_store::path::Path;

    use super::*;

    #[tokio::test]
    async fn the_default_store_keeps_files_under_the_data_directory() {
        let dir = std::env::temp_dir().join(format!("dossier-store-{}", uuid::Uuid::new_v4()));
        let settings = Settings {
            data_dir: dir.clone(),
            ..Settings::default()
        };
        let store = from_settings(&settings).expect("local store");
        let key = crate::documents::names::object_key(
            "dev",
            uuid::Uuid::nil(),
            uuid::Uuid::max(),
            &crate::documents::names::safe_file_name("../scan 1.pdf"),
        );
        store
            .put(
                &Path::from(key.as_str()),
                PutPayload::from_static(b"%PDF-1.7"),
            )
            .await
            .expect("put");
        let on_disk = dir.join("objects").join(&key);
        assert_eq!(std::fs::read(&on_disk).expect("file on disk"), b"%PDF-1.7");
        let back = store
            .get(&Path::from(key.as_str()))
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(&back[..], b"%PDF-1.7");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_bucket_switches_to_s3() {
        let mut settings = Settings::default();
        settings.s3.bucket = Some("dossier".into());
        settings.s3.endpoint = Some("http://127.0.0.1:9000".into());
        let store = from_settings(&settings).expect("s3 store");
        assert!(store.to_string().contains("AmazonS3"), "{store}");
    }
}
