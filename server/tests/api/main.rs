//! Integration tests of the server's HTTP surface against the real PostgreSQL and NATS.
//! One binary with a module per area (fast to link, shared helpers).

mod auth;
mod bot;
mod corpus;
mod documents;
mod helpers;
mod injection;
mod isolation;
mod link;
mod miniapp;
mod operations;
mod outages;
mod passkeys;
mod rag;
mod system;
