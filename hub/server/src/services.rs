//! The hub's own gRPC services (`gridhub.v1`), each call answered by [`crate::api`] as the
//! authenticated caller.

use std::sync::Arc;

use gridhub_proto::v1 as pb;
use gridhub_proto::v1::audit_service_server::AuditService;
use gridhub_proto::v1::catalog_service_server::CatalogService;
use gridhub_proto::v1::health_service_server::HealthService;
use gridhub_proto::v1::policy_service_server::PolicyService;
use tonic::{Request, Response, Status};

use crate::error::{ServerError, status};
use crate::{Caller, ServerState, api};

#[derive(Clone)]
pub struct HubServices {
    state: Arc<ServerState>,
}

impl HubServices {
    pub fn new(state: Arc<ServerState>) -> Self {
        Self { state }
    }

    fn caller<T>(&self, request: &Request<T>, method: &str) -> Result<Caller, Status> {
        self.state.metrics.request(method);
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            // The auth layer puts it there; without it, nothing runs (fail closed).
            .ok_or_else(|| status(ServerError::not_authenticated()))
    }

    fn answer<T>(&self, r: Result<T, ServerError>) -> Result<Response<T>, Status> {
        match r {
            Ok(v) => Ok(Response::new(v)),
            Err(e) => {
                if matches!(
                    e,
                    ServerError::Engine(gridhub_engine::EngineError::Denied { .. })
                ) {
                    self.state.metrics.denied();
                }
                Err(status(e))
            }
        }
    }
}

#[tonic::async_trait]
impl CatalogService for HubServices {
    async fn get_catalog(
        &self,
        request: Request<pb::GetCatalogRequest>,
    ) -> Result<Response<pb::Catalog>, Status> {
        let caller = self.caller(&request, "GetCatalog")?;
        self.answer(api::catalog(&self.state.hub, caller.governed_principal()).await)
    }

    async fn list_rejects(
        &self,
        request: Request<pb::ListRejectsRequest>,
    ) -> Result<Response<pb::RejectSummary>, Status> {
        let caller = self.caller(&request, "ListRejects")?;
        self.answer(api::rejects(&self.state.hub, caller.governed_principal()).await)
    }
}

#[tonic::async_trait]
impl PolicyService for HubServices {
    async fn check(
        &self,
        request: Request<pb::PolicyText>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        self.caller(&request, "PolicyCheck")?;
        self.answer(api::policy_check(&self.state.hub, &request.get_ref().text).await)
    }

    async fn apply(
        &self,
        request: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::PolicyChange>, Status> {
        let caller = self.caller(&request, "PolicyApply")?;
        let r = request.get_ref();
        self.answer(
            api::policy_apply(&self.state.hub, &caller.principal.id, &r.text, &r.comment).await,
        )
    }

    async fn history(
        &self,
        request: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::PolicyHistory>, Status> {
        let caller = self.caller(&request, "PolicyHistory")?;
        self.answer(api::policy_history(&self.state.hub, &caller.principal.id))
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::PolicyChange>, Status> {
        let caller = self.caller(&request, "PolicyRollback")?;
        self.answer(
            api::policy_rollback(
                &self.state.hub,
                &caller.principal.id,
                request.get_ref().version,
            )
            .await,
        )
    }

    async fn approve(
        &self,
        request: Request<pb::ProposalRequest>,
    ) -> Result<Response<pb::PolicyChange>, Status> {
        let caller = self.caller(&request, "PolicyApprove")?;
        self.answer(
            api::policy_approve(&self.state.hub, &caller.principal.id, request.get_ref().id).await,
        )
    }

    async fn reject(
        &self,
        request: Request<pb::RejectRequest>,
    ) -> Result<Response<pb::Proposal>, Status> {
        let caller = self.caller(&request, "PolicyReject")?;
        let r = request.get_ref();
        self.answer(api::policy_reject(
            &self.state.hub,
            &caller.principal.id,
            r.id,
            &r.reason,
        ))
    }

    async fn list_proposals(
        &self,
        request: Request<pb::ListProposalsRequest>,
    ) -> Result<Response<pb::ProposalList>, Status> {
        let caller = self.caller(&request, "PolicyProposals")?;
        self.answer(api::policy_proposals(
            &self.state.hub,
            &caller.principal.id,
            request.get_ref().all,
        ))
    }

    async fn show(
        &self,
        request: Request<pb::ShowRequest>,
    ) -> Result<Response<pb::PolicyVersion>, Status> {
        let caller = self.caller(&request, "PolicyShow")?;
        self.answer(api::policy_show(
            &self.state.hub,
            &caller.principal.id,
            request.get_ref().version,
        ))
    }

    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::Explanation>, Status> {
        let caller = self.caller(&request, "PolicyExplain")?;
        let r = request.get_ref();
        self.state.check_request_size(&r.sql)?;
        self.answer(
            api::policy_explain(
                &self.state.hub,
                &caller.principal.id,
                &r.principal,
                r.purpose.as_deref(),
                &r.sql,
            )
            .await,
        )
    }

    async fn declare_emergency(
        &self,
        request: Request<pb::DeclareEmergencyRequest>,
    ) -> Result<Response<pb::Emergency>, Status> {
        let caller = self.caller(&request, "DeclareEmergency")?;
        let r = request.get_ref();
        self.answer(
            api::emergency_declare(
                &self.state.hub,
                &caller.principal.id,
                &r.area,
                &r.until,
                &r.reason,
            )
            .await,
        )
    }

    async fn end_emergency(
        &self,
        request: Request<pb::EndEmergencyRequest>,
    ) -> Result<Response<pb::Emergency>, Status> {
        let caller = self.caller(&request, "EndEmergency")?;
        self.answer(
            api::emergency_end(&self.state.hub, &caller.principal.id, request.get_ref().id).await,
        )
    }

    async fn list_emergencies(
        &self,
        request: Request<pb::ListEmergenciesRequest>,
    ) -> Result<Response<pb::EmergencyList>, Status> {
        let caller = self.caller(&request, "ListEmergencies")?;
        self.answer(api::emergency_list(&self.state.hub, &caller.principal.id))
    }
}

#[tonic::async_trait]
impl AuditService for HubServices {
    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyReport>, Status> {
        let caller = self.caller(&request, "AuditVerify")?;
        self.answer(api::audit_verify(
            &self.state.hub,
            &caller.principal.id,
            request.get_ref(),
        ))
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::AuditRecords>, Status> {
        let caller = self.caller(&request, "AuditSearch")?;
        self.answer(api::audit_search(
            &self.state.hub,
            &caller.principal.id,
            request.get_ref(),
        ))
    }
}

#[tonic::async_trait]
impl HealthService for HubServices {
    async fn check(
        &self,
        request: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        let caller = self.caller(&request, "Health")?;
        self.answer(api::health(&self.state.hub, &caller.principal).await)
    }
}
