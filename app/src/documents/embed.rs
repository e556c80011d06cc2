//! Embeddings: the `Embedder` trait, and the local all-MiniLM-L6-v2 model run in process with
//! candle (mean pooling over the attention mask, then L2 normalisation, as sentence-transformers
//! does for this model). Vectors are stored as little-endian f32 bytes.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use futures::future::BoxFuture;

use super::bert::{Bert, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

pub const DIMS: usize = 384;
/// Texts per forward pass.
const BATCH: usize = 16;
/// all-MiniLM-L6-v2 was trained on 256-token inputs.
const MAX_TOKENS: usize = 256;

/// Anything that turns texts into unit-length vectors.
pub trait Embedder: Send + Sync + 'static {
    /// Names the model; stored with each vector so a model change is detectable.
    fn model_id(&self) -> &str;
    fn dims(&self) -> usize;
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, anyhow::Result<Vec<Vec<f32>>>>;
}

struct Loaded {
    model: Bert,
    tokenizer: Tokenizer,
}

/// all-MiniLM-L6-v2 on the CPU. One forward pass runs at a time: on a small machine two at
/// once only thrash.
pub struct MiniLm {
    inner: Arc<std::sync::Mutex<Loaded>>,
}

impl MiniLm {
    /// Loads `model.safetensors`, `tokenizer.json` and `config.json` from `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let file = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(anyhow::anyhow!(
                    "the embedding model file {} is missing: run `make bootstrap` or set DOSSIER_MODEL_DIR",
                    path.display()
                ))
            }
        };
        let config: Config = serde_json::from_slice(
            &std::fs::read(file("config.json")?).context("failed to read the model config")?,
        )
        .context("failed to parse the model config")?;
        let weights =
            std::fs::read(file("model.safetensors")?).context("failed to read the model")?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .context("failed to load the model weights")?;
        let model = Bert::load(vb, &config).context("failed to build the model")?;
        let mut tokenizer = Tokenizer::from_file(file("tokenizer.json")?)
            .map_err(|e| anyhow::anyhow!("failed to load the tokenizer: {e}"))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| anyhow::anyhow!("failed to configure truncation: {e}"))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));
        Ok(Self {
            inner: Arc::new(std::sync::Mutex::new(Loaded { model, tokenizer })),
        })
    }
}

fn forward(loaded: &Loaded, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
    let encodings = loaded
        .tokenizer
        .encode_batch(texts.to_vec(), true)
        .map_err(|e| anyhow::anyhow!("failed to tokenize: {e}"))?;
    let ids: Vec<Tensor> = encodings
        .iter()
        .map(|e| Tensor::new(e.get_ids(), &Device::Cpu))
        .collect::<Result<_, _>>()?;
    let masks: Vec<Tensor> = encodings
        .iter()
        .map(|e| Tensor::new(e.get_attention_mask(), &Device::Cpu))
        .collect::<Result<_, _>>()?;
    let ids = Tensor::stack(&ids, 0)?;
    let mask = Tensor::stack(&masks, 0)?;
    let token_types = ids.zeros_like()?;
    let hidden = loaded.model.forward(&ids, &token_types, &mask)?;
    // Mean over the real tokens only.
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    let normalised = mean.broadcast_div(&norms)?;
    Ok(normalised.to_vec2::<f32>()?)
}

impl Embedder for MiniLm {
    fn model_id(&self) -> &str {
        "all-MiniLM-L6-v2"
    }

    fn dims(&self) -> usize {
        DIMS
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, anyhow::Result<Vec<Vec<f32>>>> {
        Box::pin(async move {
            let mut vectors = Vec::with_capacity(texts.len());
            for batch in texts.chunks(BATCH) {
                let inner = self.inner.clone();
                let batch = batch.to_vec();
                let started = std::time::Instant::now();
                let out = tokio::task::spawn_blocking(move || {
                    let loaded = inner
                        .lock()
                        .map_err(|_| anyhow::anyhow!("the model lock is poisoned"))?;
                    forward(&loaded, &batch)
                })
                .await
                .context("the embedding task panicked")??;
                metrics::histogram!("dossier_embedding_seconds", "model" => "all-MiniLM-L6-v2")
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("dossier_embedding_texts_total", "model" => "all-MiniLM-L6-v2")
                    .increment(out.len() as u64);
                vectors.extend(out);
            }
            Ok(vectors)
        })
    }
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn from_bytes(b: &[u8]) -> anyhow::Result<Vec<f32>> {
    anyhow::ensure!(
        b.len().is_multiple_of(4),
        "a vector of {} bytes is not f32s",
        b.len()
    );
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> MiniLm {
        let dir = std::env::var_os("DOSSIER_MODEL_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".cache/dossier/models/all-MiniLM-L6-v2")
            });
        MiniLm::load(&dir).expect("the embedding model (run make bootstrap)")
    }

    #[tokio::test]
    async fn vectors_are_unit_length_batch_independent_and_meaningful() {
        let model = model();
        let texts: Vec<String> = [
            "What is my passport number?",
            "Passport No. 72 1234567, date of birth 12.03.1985",
            "Invoice total 300 EUR due 2024-03-01, payable to the consulting company by bank transfer",
        ]
        .map(String::from)
        .to_vec();
        let started = std::time::Instant::now();
        let batch = model.embed(&texts).await.expect("embed");
        eprintln!("3 texts in one batch: {:?}", started.elapsed());
        assert_eq!(batch.len(), 3);
        for (i, text) in texts.iter().enumerate() {
            assert_eq!(batch[i].len(), DIMS);
            let norm = dot(&batch[i], &batch[i]).sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
            let alone = model
                .embed(std::slice::from_ref(text))
                .await
                .expect("embed");
            let diff = batch[i]
                .iter()
                .zip(&alone[0])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-4, "padding changed a vector by {diff}");
        }
        let (question, passport, invoice) = (&batch[0], &batch[1], &batch[2]);
        assert!(dot(question, passport) > dot(question, invoice));
        assert!(dot(question, passport) > dot(passport, invoice));
        let bytes = to_bytes(question);
        assert_eq!(from_bytes(&bytes).expect("decode"), *question);
        assert!(from_bytes(&bytes[..5]).is_err());
    }

    /// The encoder is our own (documents::bert): it gives the vectors candle-transformers'
    /// BertModel gave for this model (recorded from it before the switch; equal to the last
    /// bit then), so vectors stored earlier still compare with new ones.
    #[tokio::test]
    async fn vectors_equal_the_reference_encoders() {
        let model = model();
        let texts = [
            "What is my passport number?".to_string(),
            "Invoice total 300 EUR due 2024-03-01".to_string(),
        ];
        let vectors = model.embed(&texts).await.expect("embed");
        let reference: [[f32; 6]; 2] = [
            [
                -0.06716861,
                0.04881368,
                0.014843846,
                -0.020780928,
                0.03270965,
                0.013411005,
            ],
            [
                -0.09658458,
                0.034292687,
                0.018366626,
                -0.089554936,
                -0.10288719,
                -0.04425273,
            ],
        ];
        for (vector, expected) in vectors.iter().zip(reference) {
            for (got, want) in vector.iter().zip(expected) {
                assert!((got - want).abs() < 1e-5, "{got} != {want}");
            }
        }
    }
}
