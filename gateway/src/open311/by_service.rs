//! One Open311 endpoint over several backends, each answering its own services: a request is
//! created by the backend of its service, found by whichever backend holds its id (ids never
//! clash: each backend has its own prefix), and searches and the updates feed merge them all.
//! The missed-bin backend checks api_keys for all of them: one council, one set of keys.

use std::sync::Arc;

use super::model::{
    BackendError, CreatedRequest, NewRequestUpdate, NewServiceRequest, Open311Backend,
    PostedUpdate, RequestFilter, RequestUpdate, ServiceRequest, Subject, UpdateSearch,
};

/// Missed bins and heating behind one endpoint.
pub struct ByService {
    bins: Arc<dyn Open311Backend>,
    heating: Arc<dyn Open311Backend>,
}

impl ByService {
    /// `bins` answers the missed-bin services (and checks api_keys), `heating` the heating one.
    pub fn new(bins: Arc<dyn Open311Backend>, heating: Arc<dyn Open311Backend>) -> Self {
        Self { bins, heating }
    }

    fn each(&self) -> [&Arc<dyn Open311Backend>; 2] {
        [&self.bins, &self.heating]
    }
}

impl Open311Backend for ByService {
    fn api_key_accepted(&self, key: &str) -> bool {
        self.bins.api_key_accepted(key)
    }

    fn create(&self, request: NewServiceRequest) -> Result<CreatedRequest, BackendError> {
        match request.subject {
            Subject::Heating => self.heating.create(request),
            Subject::MissedBin(_) => self.bins.create(request),
        }
    }

    fn get(&self, id: &str) -> Result<Option<ServiceRequest>, BackendError> {
        for backend in self.each() {
            if let Some(found) = backend.get(id)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    fn list(&self, filter: &RequestFilter) -> Result<Vec<ServiceRequest>, BackendError> {
        let mut found = Vec::new();
        for backend in self.each() {
            found.extend(backend.list(filter)?);
        }
        if let RequestFilter::Search(search) = filter {
            found.sort_by(|a, b| b.requested.cmp(&a.requested).then(b.id.cmp(&a.id)));
            found.truncate(search.limit);
        }
        Ok(found)
    }

    fn updates(&self, search: &UpdateSearch) -> Result<Vec<RequestUpdate>, BackendError> {
        let mut found = Vec::new();
        for backend in self.each() {
            found.extend(backend.updates(search)?);
        }
        // Stable: each report's own order is kept among equal times.
        found.sort_by(|a, b| {
            a.updated
                .cmp(&b.updated)
                .then(a.request_id.cmp(&b.request_id))
        });
        found.truncate(search.limit);
        Ok(found)
    }

    fn add_update(&self, update: NewRequestUpdate) -> Result<PostedUpdate, BackendError> {
        match self.bins.add_update(update.clone()) {
            Err(BackendError::UnknownRequest(_)) => self.heating.add_update(update),
            other => other,
        }
    }
}
