//! The Qdrant adapter (qdrant-client, gRPC): one collection per environment
//! (`{env}_chunks`, cosine), a tenant keyword index on `user_id` and a keyword index on
//! `document_id`. Every point carries `{user_id, document_id, page, chunk}`; its id is derived
//! from (document, chunk), so a re-run of the embed stage overwrites instead of duplicating.
//! Every search has a `user_id` must-filter: a person's query never sees another's vectors.

use anyhow::Context;
use qdrant_client::Qdrant;
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter, KeywordIndexParams,
    KeywordIndexParamsBuilder, PointStruct, QueryPointsBuilder, UpsertPointsBuilder,
    VectorParamsBuilder,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use uuid::Uuid;

/// One chunk's vector on its way to Qdrant.
#[derive(Debug, Clone)]
pub struct ChunkVector<'a> {
    pub ordinal: i32,
    pub page: i32,
    pub vector: &'a [f32],
}

/// A search hit: which chunk, how close.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub document_id: Uuid,
    pub ordinal: i32,
    pub score: f32,
}

pub struct QdrantIndex {
    client: Qdrant,
    collection: String,
    ready: OnceCell<u64>,
}

impl std::fmt::Debug for QdrantIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantIndex")
            .field("collection", &self.collection)
            .finish_non_exhaustive()
    }
}

/// The point id of a chunk: a UUID made from a hash of (document, ordinal).
pub fn point_id(document_id: Uuid, ordinal: i32) -> Uuid {
    let mut hasher = Sha256::new();
    hasher.update(document_id.as_bytes());
    hasher.update(ordinal.to_le_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn record(operation: &'static str, ok: bool, started: std::time::Instant) {
    metrics::counter!("dossier_vector_store_requests_total", "store" => "qdrant", "operation" => operation, "result" => if ok { "ok" } else { "error" })
        .increment(1);
    metrics::histogram!("dossier_vector_store_seconds", "store" => "qdrant", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
}

impl QdrantIndex {
    pub fn new(url: &str, api_key: Option<&SecretString>, env: &str) -> anyhow::Result<Self> {
        let mut builder = Qdrant::from_url(url)
            .timeout(std::time::Duration::from_secs(10))
            .connect_timeout(std::time::Duration::from_secs(5))
            .skip_compatibility_check();
        if let Some(key) = api_key {
            builder = builder.api_key(key.expose_secret().to_owned());
        }
        let client = builder
            .build()
            .with_context(|| format!("failed to configure Qdrant at {url}"))?;
        Ok(Self {
            client,
            collection: format!("{env}_chunks"),
            ready: OnceCell::new(),
        })
    }

    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// Creates the collection and its payload indexes once (idempotent across replicas).
    async fn ensure(&self, dims: u64) -> anyhow::Result<()> {
        let have = self
            .ready
            .get_or_try_init(|| async {
                let exists = self
                    .client
                    .collection_exists(&self.collection)
                    .await
                    .context("failed to ask Qdrant for the collection")?;
                if !exists {
                    let created = self
                        .client
                        .create_collection(
                            CreateCollectionBuilder::new(&self.collection)
                                .vectors_config(VectorParamsBuilder::new(dims, Distance::Cosine)),
                        )
                        .await;
                    // Another replica may have created it meanwhile.
                    if let Err(error) = created
                        && !error.to_string().contains("already exists")
                    {
                        return Err(anyhow::Error::new(error)
                            .context("failed to create the Qdrant collection"));
                    }
                }
                self.client
                    .create_field_index(
                        CreateFieldIndexCollectionBuilder::new(
                            &self.collection,
                            "user_id",
                            FieldType::Keyword,
                        )
                        .field_index_params(KeywordIndexParams::from(
                            KeywordIndexParamsBuilder::default().is_tenant(true),
                        ))
                        .wait(true),
                    )
                    .await
                    .context("failed to create Qdrant's user_id index")?;
                self.client
                    .create_field_index(
                        CreateFieldIndexCollectionBuilder::new(
                            &self.collection,
                            "document_id",
                            FieldType::Keyword,
                        )
                        .wait(true),
                    )
                    .await
                    .context("failed to create Qdrant's document_id index")?;
                anyhow::Ok(dims)
            })
            .await?;
        anyhow::ensure!(
            *have == dims,
            "vectors of {dims} dimensions do not fit the Qdrant collection of {have}"
        );
        Ok(())
    }

    /// Upserts a document's chunk vectors (waiting until Qdrant applied them).
    pub async fn upsert(
        &self,
        user_id: Uuid,
        document_id: Uuid,
        chunks: &[ChunkVector<'_>],
    ) -> anyhow::Result<()> {
        let Some(first) = chunks.first() else {
            return Ok(());
        };
        self.ensure(first.vector.len() as u64).await?;
        let points: Vec<PointStruct> = chunks
            .iter()
            .map(|chunk| {
                let mut payload = qdrant_client::Payload::new();
                payload.insert("user_id", user_id.to_string());
                payload.insert("document_id", document_id.to_string());
                payload.insert("page", i64::from(chunk.page));
                payload.insert("chunk", i64::from(chunk.ordinal));
                PointStruct::new(
                    point_id(document_id, chunk.ordinal).to_string(),
                    chunk.vector.to_vec(),
                    payload,
                )
            })
            .collect();
        let started = std::time::Instant::now();
        let result = self
            .client
            .upsert_points(UpsertPointsBuilder::new(&self.collection, points).wait(true))
            .await;
        record("upsert", result.is_ok(), started);
        result.context("failed to upsert vectors into Qdrant")?;
        Ok(())
    }

    fn owner_filter(user_id: Uuid, document_id: Option<Uuid>) -> Filter {
        let mut must = vec![Condition::matches("user_id", user_id.to_string())];
        if let Some(document_id) = document_id {
            must.push(Condition::matches("document_id", document_id.to_string()));
        }
        Filter::must(must)
    }

    /// Removes a document's points (or, without a document, all of a person's).
    pub async fn delete(&self, user_id: Uuid, document_id: Option<Uuid>) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let result = self
            .client
            .delete_points(
                DeletePointsBuilder::new(&self.collection)
                    .points(Self::owner_filter(user_id, document_id))
                    .wait(true),
            )
            .await;
        record("delete", result.is_ok(), started);
        match result {
            Ok(_) => Ok(()),
            // Nothing was ever stored.
            Err(error) if error.to_string().contains("doesn't exist") => Ok(()),
            Err(error) => Err(anyhow::Error::new(error).context("failed to delete from Qdrant")),
        }
    }

    /// How many points a person (or one of their documents) has.
    pub async fn count(&self, user_id: Uuid, document_id: Option<Uuid>) -> anyhow::Result<u64> {
        let response = self
            .client
            .count(
                CountPointsBuilder::new(&self.collection)
                    .filter(Self::owner_filter(user_id, document_id))
                    .exact(true),
            )
            .await
            .context("failed to count Qdrant points")?;
        Ok(response.result.map_or(0, |r| r.count))
    }

    /// The `limit` nearest chunks of this person's documents.
    pub async fn search(
        &self,
        user_id: Uuid,
        vector: &[f32],
        limit: u64,
    ) -> anyhow::Result<Vec<Hit>> {
        let started = std::time::Instant::now();
        let result = self
            .client
            .query(
                QueryPointsBuilder::new(&self.collection)
                    .query(vector.to_vec())
                    .filter(Self::owner_filter(user_id, None))
                    .limit(limit)
                    .with_payload(true),
            )
            .await;
        record("search", result.is_ok(), started);
        let response = match result {
            Ok(response) => response,
            Err(error) if error.to_string().contains("doesn't exist") => return Ok(Vec::new()),
            Err(error) => {
                return Err(anyhow::Error::new(error).context("failed to search Qdrant"));
            }
        };
        let mut hits = Vec::with_capacity(response.result.len());
        for point in response.result {
            let text = |key: &str| {
                point.payload.get(key).and_then(|value| match &value.kind {
                    Some(qdrant_client::qdrant::value::Kind::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
            };
            // Defence in depth: a point of another person is dropped even if a filter failed.
            if text("user_id").as_deref() != Some(user_id.to_string().as_str()) {
                tracing::error!("Qdrant returned a point outside the user filter");
                continue;
            }
            let Some(document_id) = text("document_id").and_then(|s| s.parse().ok()) else {
                continue;
            };
            let ordinal = point
                .payload
                .get("chunk")
                .and_then(|value| match &value.kind {
                    Some(qdrant_client::qdrant::value::Kind::IntegerValue(n)) => {
                        i32::try_from(*n).ok()
                    }
                    Some(qdrant_client::qdrant::value::Kind::DoubleValue(n)) => Some(*n as i32),
                    _ => None,
                });
            let Some(ordinal) = ordinal else { continue };
            hits.push(Hit {
                document_id,
                ordinal,
                score: point.score,
            });
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::qdrant::QdrantDouble;

    fn unit(values: &[f32]) -> Vec<f32> {
        let norm = values.iter().map(|x| x * x).sum::<f32>().sqrt();
        values.iter().map(|x| x / norm).collect()
    }

    #[tokio::test]
    async fn points_are_upserted_searched_per_tenant_and_deleted_over_grpc() {
        let double = QdrantDouble::start().await;
        let index = QdrantIndex::new(&double.url(), None, "t-adapter").expect("client");
        let (ann, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let (ann_doc, bob_doc) = (Uuid::new_v4(), Uuid::new_v4());
        let near = unit(&[1.0, 0.1, 0.0, 0.0]);
        let far = unit(&[0.0, 0.0, 1.0, 0.2]);
        index
            .upsert(
                ann,
                ann_doc,
                &[
                    ChunkVector {
                        ordinal: 0,
                        page: 1,
                        vector: &near,
                    },
                    ChunkVector {
                        ordinal: 1,
                        page: 2,
                        vector: &far,
                    },
                ],
            )
            .await
            .expect("upsert");
        // Bob's point is the closest of all to the query, but never Ann's result.
        let query = unit(&[1.0, 0.0, 0.0, 0.0]);
        index
            .upsert(
                bob,
                bob_doc,
                &[ChunkVector {
                    ordinal: 0,
                    page: 1,
                    vector: &query,
                }],
            )
            .await
            .expect("upsert");
        // The same chunk again overwrites (ids derive from document and chunk).
        index
            .upsert(
                ann,
                ann_doc,
                &[ChunkVector {
                    ordinal: 0,
                    page: 1,
                    vector: &near,
                }],
            )
            .await
            .expect("upsert again");
        let collection = double.collection("t-adapter_chunks").expect("collection");
        assert_eq!(collection.points.len(), 3);
        assert_eq!(collection.indexes.get("user_id"), Some(&true));

        let hits = index.search(ann, &query, 10).await.expect("search");
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].document_id, ann_doc);
        assert_eq!(hits[0].ordinal, 0);
        assert!(hits[0].score > hits[1].score);
        assert!(hits.iter().all(|h| h.document_id == ann_doc));
        assert_eq!(index.count(ann, None).await.expect("count"), 2);

        index.delete(ann, Some(ann_doc)).await.expect("delete");
        assert_eq!(index.count(ann, None).await.expect("count"), 0);
        assert_eq!(index.count(bob, None).await.expect("count"), 1);

        // A Qdrant that is down is an error, not an empty answer (the client itself retries
        // an unavailable server once).
        double.fail_next(5);
        assert!(index.search(bob, &query, 10).await.is_err());
        double.fail_next(0);
        // Vectors of another size are refused clearly.
        let error = index
            .upsert(
                bob,
                bob_doc,
                &[ChunkVector {
                    ordinal: 1,
                    page: 1,
                    vector: &[1.0, 0.0],
                }],
            )
            .await
            .expect_err("wrong dimensions");
        assert!(error.to_string().contains("dimensions"), "{error:#}");
    }
}
