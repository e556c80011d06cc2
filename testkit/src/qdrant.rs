//! A Qdrant server double that speaks Qdrant's real gRPC protocol: it serves the `Collections`,
//! `Points` and `Qdrant` services generated in `qdrant-client` itself, so the production
//! adapter talks to it exactly as it talks to a Qdrant server (which cannot be installed on
//! this machine). State lives in memory; search is exact cosine over the points that pass the
//! filter. The subset served is what Dossier uses: collections (exists, create, delete),
//! payload indexes, upsert, delete by ids or filter, count and `query` with a nearest-vector
//! query and `must` keyword filters. Anything else answers `unimplemented`, so a test notices
//! a client change instead of getting a silently wrong answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use qdrant_client::qdrant::collections_server::{Collections, CollectionsServer};
use qdrant_client::qdrant::points_server::{Points, PointsServer};
use qdrant_client::qdrant::qdrant_server::{Qdrant, QdrantServer};
use qdrant_client::qdrant::{self as q};
use tonic::{Request, Response, Status};

type Payload = HashMap<String, q::Value>;

#[derive(Debug, Clone)]
pub struct StoredPoint {
    pub vector: Vec<f32>,
    pub payload: Payload,
}

#[derive(Debug, Default, Clone)]
pub struct Collection {
    pub dims: u64,
    pub points: HashMap<String, StoredPoint>,
    /// Payload indexes: field name → `is_tenant`.
    pub indexes: HashMap<String, bool>,
}

#[derive(Debug, Default)]
pub struct State {
    pub collections: HashMap<String, Collection>,
    /// Every query's filter keys and values, for tests that check tenant filtering.
    pub queries: Vec<Vec<(String, String)>>,
    /// Calls answered `unavailable` before the next succeeds (a Qdrant that is down).
    pub fail_next: usize,
}

/// A running double; stops when dropped.
pub struct QdrantDouble {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for QdrantDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl QdrantDouble {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Qdrant double");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(State::default()));
        let service = Service {
            state: state.clone(),
        };
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(CollectionsServer::new(service.clone()))
                .add_service(PointsServer::new(service.clone()))
                .add_service(QdrantServer::new(service))
                .serve_with_incoming(incoming)
                .await;
        });
        Self { addr, state, task }
    }

    /// The URL to give the client (gRPC over plain HTTP/2).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn collection(&self, name: &str) -> Option<Collection> {
        self.lock().collections.get(name).cloned()
    }

    /// Makes the next `n` calls fail as a server that is down would.
    pub fn fail_next(&self, n: usize) {
        self.lock().fail_next = n;
    }

    pub fn queries(&self) -> Vec<Vec<(String, String)>> {
        self.lock().queries.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("the Qdrant double's state")
    }
}

#[derive(Clone)]
struct Service {
    state: Arc<Mutex<State>>,
}

impl Service {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, Status> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| Status::internal("poisoned"))?;
        if state.fail_next > 0 {
            state.fail_next -= 1;
            return Err(Status::unavailable("the Qdrant double is down"));
        }
        Ok(state)
    }
}

fn point_key(id: Option<&q::PointId>) -> Result<String, Status> {
    match id.and_then(|id| id.point_id_options.as_ref()) {
        Some(q::point_id::PointIdOptions::Uuid(uuid)) => Ok(uuid.to_lowercase()),
        Some(q::point_id::PointIdOptions::Num(n)) => Ok(n.to_string()),
        None => Err(Status::invalid_argument("a point without an id")),
    }
}

fn point_id(key: &str) -> q::PointId {
    match key.parse::<u64>() {
        Ok(n) => q::PointId {
            point_id_options: Some(q::point_id::PointIdOptions::Num(n)),
        },
        Err(_) => q::PointId {
            point_id_options: Some(q::point_id::PointIdOptions::Uuid(key.to_owned())),
        },
    }
}

#[allow(deprecated)]
fn dense(vector: &q::Vector) -> Option<Vec<f32>> {
    match &vector.vector {
        Some(q::vector::Vector::Dense(dense)) => Some(dense.data.clone()),
        Some(_) => None,
        None if !vector.data.is_empty() => Some(vector.data.clone()),
        None => None,
    }
}

fn point_vector(vectors: Option<&q::Vectors>) -> Result<Vec<f32>, Status> {
    match vectors.and_then(|v| v.vectors_options.as_ref()) {
        Some(q::vectors::VectorsOptions::Vector(vector)) => {
            dense(vector).ok_or_else(|| Status::invalid_argument("only dense vectors are served"))
        }
        _ => Err(Status::invalid_argument(
            "only one unnamed dense vector per point is served",
        )),
    }
}

fn keyword(value: &q::Value) -> Option<String> {
    match &value.kind {
        Some(q::value::Kind::StringValue(s)) => Some(s.clone()),
        Some(q::value::Kind::IntegerValue(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// The `must` keyword conditions of a filter; anything else is refused.
fn conditions(filter: Option<&q::Filter>) -> Result<Vec<(String, String)>, Status> {
    let Some(filter) = filter else {
        return Ok(Vec::new());
    };
    if !filter.should.is_empty() || !filter.must_not.is_empty() || filter.min_should.is_some() {
        return Err(Status::unimplemented("only `must` filters are served"));
    }
    filter
        .must
        .iter()
        .map(|condition| match &condition.condition_one_of {
            Some(q::condition::ConditionOneOf::Field(field)) => {
                match field.r#match.as_ref().and_then(|m| m.match_value.as_ref()) {
                    Some(q::r#match::MatchValue::Keyword(value)) => {
                        Ok((field.key.clone(), value.clone()))
                    }
                    Some(q::r#match::MatchValue::Integer(value)) => {
                        Ok((field.key.clone(), value.to_string()))
                    }
                    _ => Err(Status::unimplemented("only keyword matches are served")),
                }
            }
            _ => Err(Status::unimplemented("only field conditions are served")),
        })
        .collect()
}

fn passes(point: &StoredPoint, must: &[(String, String)]) -> bool {
    must.iter().all(|(key, value)| {
        point.payload.get(key).and_then(keyword).as_deref() == Some(value.as_str())
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

fn done() -> q::PointsOperationResponse {
    q::PointsOperationResponse {
        result: Some(q::UpdateResult {
            operation_id: Some(0),
            status: q::UpdateStatus::Completed as i32,
        }),
        time: 0.0,
        usage: None,
    }
}

#[tonic::async_trait]
impl Qdrant for Service {
    async fn health_check(
        &self,
        _: Request<q::HealthCheckRequest>,
    ) -> Result<Response<q::HealthCheckReply>, Status> {
        Ok(Response::new(q::HealthCheckReply {
            title: "qdrant - vector search engine (test double)".into(),
            version: "1.15.0".into(),
            commit: None,
        }))
    }
}

#[tonic::async_trait]
impl Collections for Service {
    async fn collection_exists(
        &self,
        request: Request<q::CollectionExistsRequest>,
    ) -> Result<Response<q::CollectionExistsResponse>, Status> {
        let exists = self
            .lock()?
            .collections
            .contains_key(&request.get_ref().collection_name);
        Ok(Response::new(q::CollectionExistsResponse {
            result: Some(q::CollectionExists { exists }),
            time: 0.0,
        }))
    }

    async fn create(
        &self,
        request: Request<q::CreateCollection>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        let request = request.into_inner();
        let dims = match request.vectors_config.and_then(|c| c.config) {
            Some(q::vectors_config::Config::Params(params)) => {
                if params.distance != q::Distance::Cosine as i32 {
                    return Err(Status::unimplemented("only cosine distance is served"));
                }
                params.size
            }
            _ => {
                return Err(Status::invalid_argument(
                    "one unnamed vector config is needed",
                ));
            }
        };
        let mut state = self.lock()?;
        if state.collections.contains_key(&request.collection_name) {
            return Err(Status::already_exists(format!(
                "Collection `{}` already exists!",
                request.collection_name
            )));
        }
        state.collections.insert(
            request.collection_name,
            Collection {
                dims,
                ..Collection::default()
            },
        );
        Ok(Response::new(q::CollectionOperationResponse {
            result: true,
            time: 0.0,
        }))
    }

    async fn delete(
        &self,
        request: Request<q::DeleteCollection>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        let removed = self
            .lock()?
            .collections
            .remove(&request.get_ref().collection_name)
            .is_some();
        Ok(Response::new(q::CollectionOperationResponse {
            result: removed,
            time: 0.0,
        }))
    }

    async fn get(
        &self,
        _: Request<q::GetCollectionInfoRequest>,
    ) -> Result<Response<q::GetCollectionInfoResponse>, Status> {
        Err(unimplemented("get"))
    }

    async fn list(
        &self,
        _: Request<q::ListCollectionsRequest>,
    ) -> Result<Response<q::ListCollectionsResponse>, Status> {
        Err(unimplemented("list"))
    }

    async fn update(
        &self,
        _: Request<q::UpdateCollection>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        Err(unimplemented("update"))
    }

    async fn update_aliases(
        &self,
        _: Request<q::ChangeAliases>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        Err(unimplemented("update_aliases"))
    }

    async fn list_collection_aliases(
        &self,
        _: Request<q::ListCollectionAliasesRequest>,
    ) -> Result<Response<q::ListAliasesResponse>, Status> {
        Err(unimplemented("list_collection_aliases"))
    }

    async fn list_aliases(
        &self,
        _: Request<q::ListAliasesRequest>,
    ) -> Result<Response<q::ListAliasesResponse>, Status> {
        Err(unimplemented("list_aliases"))
    }

    async fn collection_cluster_info(
        &self,
        _: Request<q::CollectionClusterInfoRequest>,
    ) -> Result<Response<q::CollectionClusterInfoResponse>, Status> {
        Err(unimplemented("collection_cluster_info"))
    }

    async fn update_collection_cluster_setup(
        &self,
        _: Request<q::UpdateCollectionClusterSetupRequest>,
    ) -> Result<Response<q::UpdateCollectionClusterSetupResponse>, Status> {
        Err(unimplemented("update_collection_cluster_setup"))
    }

    async fn create_shard_key(
        &self,
        _: Request<q::CreateShardKeyRequest>,
    ) -> Result<Response<q::CreateShardKeyResponse>, Status> {
        Err(unimplemented("create_shard_key"))
    }

    async fn delete_shard_key(
        &self,
        _: Request<q::DeleteShardKeyRequest>,
    ) -> Result<Response<q::DeleteShardKeyResponse>, Status> {
        Err(unimplemented("delete_shard_key"))
    }

    async fn list_shard_keys(
        &self,
        _: Request<q::ListShardKeysRequest>,
    ) -> Result<Response<q::ListShardKeysResponse>, Status> {
        Err(unimplemented("list_shard_keys"))
    }
}

impl State {
    fn collection(&self, name: &str) -> Result<&Collection, Status> {
        self.collections.get(name).ok_or_else(|| not_found(name))
    }

    fn collection_mut(&mut self, name: &str) -> Result<&mut Collection, Status> {
        self.collections
            .get_mut(name)
            .ok_or_else(|| not_found(name))
    }
}

fn unimplemented(method: &str) -> Status {
    Status::unimplemented(format!("{method} is not served by the double"))
}

fn not_found(name: &str) -> Status {
    Status::not_found(format!("Collection `{name}` doesn't exist!"))
}

#[tonic::async_trait]
impl Points for Service {
    async fn upsert(
        &self,
        request: Request<q::UpsertPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        let request = request.into_inner();
        let mut state = self.lock()?;
        let collection = state.collection_mut(&request.collection_name)?;
        let mut staged = Vec::with_capacity(request.points.len());
        for point in request.points {
            let key = point_key(point.id.as_ref())?;
            let vector = point_vector(point.vectors.as_ref())?;
            if vector.len() as u64 != collection.dims {
                return Err(Status::invalid_argument(format!(
                    "Wrong input: Vector dimension error: expected dim: {}, got {}",
                    collection.dims,
                    vector.len()
                )));
            }
            staged.push((
                key,
                StoredPoint {
                    vector,
                    payload: point.payload,
                },
            ));
        }
        collection.points.extend(staged);
        Ok(Response::new(done()))
    }

    async fn delete(
        &self,
        request: Request<q::DeletePoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        let request = request.into_inner();
        let mut state = self.lock()?;
        let collection = state.collection_mut(&request.collection_name)?;
        match request.points.and_then(|p| p.points_selector_one_of) {
            Some(q::points_selector::PointsSelectorOneOf::Points(list)) => {
                for id in &list.ids {
                    collection.points.remove(&point_key(Some(id))?);
                }
            }
            Some(q::points_selector::PointsSelectorOneOf::Filter(filter)) => {
                let must = conditions(Some(&filter))?;
                if must.is_empty() {
                    return Err(Status::invalid_argument("an empty delete filter"));
                }
                collection.points.retain(|_, point| !passes(point, &must));
            }
            None => return Err(Status::invalid_argument("nothing selected to delete")),
        }
        Ok(Response::new(done()))
    }

    async fn create_field_index(
        &self,
        request: Request<q::CreateFieldIndexCollection>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        let request = request.into_inner();
        let is_tenant = match request.field_index_params.and_then(|p| p.index_params) {
            Some(q::payload_index_params::IndexParams::KeywordIndexParams(params)) => {
                params.is_tenant.unwrap_or(false)
            }
            _ => false,
        };
        let mut state = self.lock()?;
        let collection = state.collection_mut(&request.collection_name)?;
        collection.indexes.insert(request.field_name, is_tenant);
        Ok(Response::new(done()))
    }

    async fn count(
        &self,
        request: Request<q::CountPoints>,
    ) -> Result<Response<q::CountResponse>, Status> {
        let request = request.into_inner();
        let must = conditions(request.filter.as_ref())?;
        let state = self.lock()?;
        let collection = state.collection(&request.collection_name)?;
        let count = collection
            .points
            .values()
            .filter(|point| passes(point, &must))
            .count() as u64;
        Ok(Response::new(q::CountResponse {
            result: Some(q::CountResult { count }),
            time: 0.0,
            usage: None,
        }))
    }

    async fn query(
        &self,
        request: Request<q::QueryPoints>,
    ) -> Result<Response<q::QueryResponse>, Status> {
        let request = request.into_inner();
        if !request.prefetch.is_empty() || request.using.is_some() {
            return Err(Status::unimplemented(
                "prefetch and named vectors are not served",
            ));
        }
        let vector = match request.query.and_then(|query| query.variant) {
            Some(q::query::Variant::Nearest(input)) => match input.variant {
                Some(q::vector_input::Variant::Dense(dense)) => dense.data,
                _ => {
                    return Err(Status::unimplemented(
                        "only dense nearest queries are served",
                    ));
                }
            },
            _ => return Err(Status::unimplemented("only nearest queries are served")),
        };
        let must = conditions(request.filter.as_ref())?;
        let mut state = self.lock()?;
        state.queries.push(must.clone());
        let collection = state.collection(&request.collection_name)?;
        if vector.len() as u64 != collection.dims {
            return Err(Status::invalid_argument(
                "Wrong input: Vector dimension error",
            ));
        }
        let with_payload = matches!(
            request.with_payload.and_then(|w| w.selector_options),
            Some(q::with_payload_selector::SelectorOptions::Enable(true))
        );
        let mut scored: Vec<(f32, &String, &StoredPoint)> = collection
            .points
            .iter()
            .filter(|(_, point)| passes(point, &must))
            .map(|(key, point)| (cosine(&vector, &point.vector), key, point))
            .filter(|(score, _, _)| request.score_threshold.is_none_or(|t| *score >= t))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        let offset = usize::try_from(request.offset.unwrap_or(0)).unwrap_or(usize::MAX);
        let limit = usize::try_from(request.limit.unwrap_or(10)).unwrap_or(usize::MAX);
        let result = scored
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(score, key, point)| q::ScoredPoint {
                id: Some(point_id(key)),
                payload: if with_payload {
                    point.payload.clone()
                } else {
                    HashMap::new()
                },
                score,
                ..q::ScoredPoint::default()
            })
            .collect();
        Ok(Response::new(q::QueryResponse {
            result,
            time: 0.0,
            usage: None,
        }))
    }

    async fn get(&self, _: Request<q::GetPoints>) -> Result<Response<q::GetResponse>, Status> {
        Err(unimplemented("get"))
    }

    async fn update_vectors(
        &self,
        _: Request<q::UpdatePointVectors>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("update_vectors"))
    }

    async fn delete_vectors(
        &self,
        _: Request<q::DeletePointVectors>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("delete_vectors"))
    }

    async fn set_payload(
        &self,
        _: Request<q::SetPayloadPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("set_payload"))
    }

    async fn overwrite_payload(
        &self,
        _: Request<q::SetPayloadPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("overwrite_payload"))
    }

    async fn delete_payload(
        &self,
        _: Request<q::DeletePayloadPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("delete_payload"))
    }

    async fn clear_payload(
        &self,
        _: Request<q::ClearPayloadPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("clear_payload"))
    }

    async fn delete_field_index(
        &self,
        _: Request<q::DeleteFieldIndexCollection>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("delete_field_index"))
    }

    async fn create_vector_name(
        &self,
        _: Request<q::CreateVectorNameRequest>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("create_vector_name"))
    }

    async fn delete_vector_name(
        &self,
        _: Request<q::DeleteVectorNameRequest>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(unimplemented("delete_vector_name"))
    }

    async fn search(
        &self,
        _: Request<q::SearchPoints>,
    ) -> Result<Response<q::SearchResponse>, Status> {
        Err(unimplemented("search"))
    }

    async fn search_batch(
        &self,
        _: Request<q::SearchBatchPoints>,
    ) -> Result<Response<q::SearchBatchResponse>, Status> {
        Err(unimplemented("search_batch"))
    }

    async fn search_groups(
        &self,
        _: Request<q::SearchPointGroups>,
    ) -> Result<Response<q::SearchGroupsResponse>, Status> {
        Err(unimplemented("search_groups"))
    }

    async fn scroll(
        &self,
        _: Request<q::ScrollPoints>,
    ) -> Result<Response<q::ScrollResponse>, Status> {
        Err(unimplemented("scroll"))
    }

    async fn recommend(
        &self,
        _: Request<q::RecommendPoints>,
    ) -> Result<Response<q::RecommendResponse>, Status> {
        Err(unimplemented("recommend"))
    }

    async fn recommend_batch(
        &self,
        _: Request<q::RecommendBatchPoints>,
    ) -> Result<Response<q::RecommendBatchResponse>, Status> {
        Err(unimplemented("recommend_batch"))
    }

    async fn recommend_groups(
        &self,
        _: Request<q::RecommendPointGroups>,
    ) -> Result<Response<q::RecommendGroupsResponse>, Status> {
        Err(unimplemented("recommend_groups"))
    }

    async fn discover(
        &self,
        _: Request<q::DiscoverPoints>,
    ) -> Result<Response<q::DiscoverResponse>, Status> {
        Err(unimplemented("discover"))
    }

    async fn discover_batch(
        &self,
        _: Request<q::DiscoverBatchPoints>,
    ) -> Result<Response<q::DiscoverBatchResponse>, Status> {
        Err(unimplemented("discover_batch"))
    }

    async fn update_batch(
        &self,
        _: Request<q::UpdateBatchPoints>,
    ) -> Result<Response<q::UpdateBatchResponse>, Status> {
        Err(unimplemented("update_batch"))
    }

    async fn query_batch(
        &self,
        _: Request<q::QueryBatchPoints>,
    ) -> Result<Response<q::QueryBatchResponse>, Status> {
        Err(unimplemented("query_batch"))
    }

    async fn query_groups(
        &self,
        _: Request<q::QueryPointGroups>,
    ) -> Result<Response<q::QueryGroupsResponse>, Status> {
        Err(unimplemented("query_groups"))
    }

    async fn facet(
        &self,
        _: Request<q::FacetCounts>,
    ) -> Result<Response<q::FacetResponse>, Status> {
        Err(unimplemented("facet"))
    }

    async fn search_matrix_pairs(
        &self,
        _: Request<q::SearchMatrixPoints>,
    ) -> Result<Response<q::SearchMatrixPairsResponse>, Status> {
        Err(unimplemented("search_matrix_pairs"))
    }

    async fn search_matrix_offsets(
        &self,
        _: Request<q::SearchMatrixPoints>,
    ) -> Result<Response<q::SearchMatrixOffsetsResponse>, Status> {
        Err(unimplemented("search_matrix_offsets"))
    }
}
