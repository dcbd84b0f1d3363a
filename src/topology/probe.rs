//! One probe of one node: connect, ask its role, disconnect.

use crate::server::{self, ConnectSpec, ServerError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    Primary,
    Replica,
}

pub async fn probe_node(spec: &ConnectSpec) -> Result<NodeRole, ServerError> {
    let mut spec = spec.clone();
    spec.connect_timeout = spec.connect_timeout.min(super::PROBE_TIMEOUT);
    let mut conn = server::connect(&spec).await?;
    let rows = tokio::time::timeout(
        super::PROBE_TIMEOUT,
        server::simple_query(&mut conn, "SELECT pg_is_in_recovery()"),
    )
    .await
    .map_err(|_| ServerError::Protocol("probe timed out".into()))??;
    match rows
        .first()
        .and_then(|r| r.first())
        .and_then(|v| v.as_deref())
    {
        Some("f") => Ok(NodeRole::Primary),
        Some("t") => Ok(NodeRole::Replica),
        other => Err(ServerError::Protocol(format!(
            "unexpected pg_is_in_recovery() result {other:?}"
        ))),
    }
}
