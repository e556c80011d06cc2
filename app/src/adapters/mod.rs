//! The networked adapters, used when configured (design §6): Ollama for models and answers,
//! Qdrant for vectors. The embedded defaults (the local model, rules, vectors in PostgreSQL)
//! live with the features that use them.

pub mod ollama;
pub mod qdrant;
